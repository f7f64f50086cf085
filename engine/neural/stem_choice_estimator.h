#pragma once
// "Do no harm" for the neural modes: per stem, how much of the network ensemble's mask a mode
// uses and how much of the DSP back end's (the free Live mode), chosen on the dev split of the
// real-music evaluation (the mode table, engine/quality_modes.h; the figures that chose it are
// in docs/models.md). Where the two disagree about the voice, the
// vocal mask takes the smaller of them (agreement), so an instrumental keeps little in
// "vocals"; the mass it gives up goes to the other stems in proportion to their masks.
//
// masks = normalise( w_s · network_s + (1 − w_s) · dsp_s ), then the vocal agreement step.
// Every step keeps each bin's masks in [0, 1] and summing to 1, so the stems still sum to the
// input. The DSP masks are delayed inside to the network's frame (its look-ahead). All buffers
// are allocated in the constructor; estimate() is arithmetic only.
#include <array>
#include <memory>
#include <vector>

#include "engine/mask_estimator.h"

namespace stemsphere {

struct StemChoice {
    // Per stem (Stem order), the share of the network's mask; the rest comes from DSP.
    std::array<float, kStemCount> network_weight{1.0f, 1.0f, 1.0f, 1.0f};
    // In [0, 1]: how far the vocal mask moves from the blend towards min(network, DSP).
    float vocal_agreement = 0.0f;
    // A vocal mask below this is taken as doubt and pushed down further (v → v²/t, a downward
    // expander; 0 = off): weak, scattered voice estimates are what an instrumental leaks.
    float vocal_expand_below = 0.0f;

    // Whether the choice reads the DSP back end's masks at all.
    bool needs_dsp() const {
        for (float w : network_weight) {
            if (w != 1.0f) return true;
        }
        return vocal_agreement != 0.0f;
    }
    bool is_network_only() const {
        for (float w : network_weight) {
            if (w != 1.0f) return false;
        }
        return vocal_agreement == 0.0f && vocal_expand_below == 0.0f;
    }
};

class StemChoiceEstimator final : public MaskEstimator {
  public:
    // dsp->lookahead_frames() <= network->lookahead_frames(); dsp may be null when
    // !choice.needs_dsp() (no DSP back end runs then).
    StemChoiceEstimator(std::unique_ptr<MaskEstimator> network, std::unique_ptr<MaskEstimator> dsp,
                        size_t bins, const StemChoice& choice);

    size_t lookahead_frames() const override { return lookahead_; }
    void estimate(const std::complex<float>* left, const std::complex<float>* right,
                  float* masks) override;
    void reset() override;

  private:
    std::unique_ptr<MaskEstimator> network_, dsp_;
    size_t bins_;
    StemChoice choice_;
    size_t lookahead_;
    size_t delay_ = 0;         // frames the DSP masks wait
    std::vector<float> ring_;  // (delay_ + 1) × kStemCount × bins of DSP masks
    size_t ring_pos_ = 0;
};

}  // namespace stemsphere
