#pragma once
// The free DSP separation back end: causal harmonic/percussive median filtering (FitzGerald,
// past frames only, so it adds no look-ahead), inter-channel coherence for centre-panned vocals,
// and band priors for bass. "Other" is what is left, so the masks sum to 1 by construction:
//   drums  = P                       (percussive share)
//   bass   = H · low(f)              (harmonic, below ~200 Hz)
//   vocals = H · (1−low(f)) · voice(f) · centre   (harmonic, 150 Hz–8 kHz, centre-panned)
//   other  = H · (1−low(f)) · (1 − voice(f) · centre)
// with H + P = 1 the soft harmonic/percussive split.
#include <complex>
#include <vector>

#include "engine/mask_estimator.h"

namespace stemsphere {

class DspMaskEstimator final : public MaskEstimator {
  public:
    explicit DspMaskEstimator(const StftFormat& format);

    size_t lookahead_frames() const override { return 0; }
    void estimate(const std::complex<float>* left, const std::complex<float>* right,
                  float* masks) override;
    void reset() override;

  private:
    StftFormat format_;
    size_t time_taps_;            // frames in the causal harmonic (time) median
    size_t freq_taps_;            // bins in the percussive (frequency) median, odd
    std::vector<float> history_;  // time_taps_ × bins magnitudes, ring
    size_t history_pos_ = 0;
    std::vector<float> magnitude_;
    std::vector<float> low_prior_;    // per bin: bass band share
    std::vector<float> voice_prior_;  // per bin: vocal band weight
    std::vector<float> scratch_;      // median work area (max of the two tap counts)
};

}  // namespace stemsphere
