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

// Constants of the method in one place. Defaults come from a coarse sweep on generated songs
// (stemsphere-demosong seeds 101-103, never the evaluation clips); a sharper centre weight
// (centre_power 4) scored higher there but lost 0.4-0.9 dB of vocal SDR on real music, so 2 stays.
struct DspTuning {
    double harmonic_seconds = 0.11;  // causal time median span (past frames only)
    double percussive_hz = 250.0;    // frequency median span
    double bass_corner_hz = 180.0;   // harmonic energy below this is bass
    double voice_low_hz = 160.0;     // vocal band
    double voice_high_hz = 8000.0;
    float centre_power = 2.0f;  // sharpness of the centre-panning weight
    float hp_power = 2.0f;      // Wiener-like exponent of the harmonic/percussive split
    // Drums take a bin only where its percussive median beats the harmonic one by this factor
    // (Driedger's margin); 1 = the plain soft split.
    float percussive_margin = 1.0f;
    // Vocals take a bin only in proportion to how clearly harmonic it is: h²/(h² + (m·p)²) with
    // this margin m; what the voice leaves of a noisy, neither-nor bin (a distorted guitar's
    // dense spectrum) goes to "other". 1 = the harmonic share itself.
    float vocal_margin = 1.0f;
    // Time constant of the recursive cross-spectrum average the centre cue is taken from;
    // 0 = this frame only.
    double centre_seconds = 0.0;
    // Decay time of the vocal evidence kept from earlier frames (reverb tails); 0 = none.
    double vocal_hold_seconds = 0.0;
    // Vocal evidence below this is handed to "other" (soft knee): weak, disagreeing cues leave
    // the bin alone rather than call it a voice. 0 = off.
    float vocal_threshold = 0.0f;

    // The back end the shipped guided networks were trained on (models/dsp_bridge.cpp):
    // they refine exactly these masks, so they keep getting them.
    static DspTuning network_guide() { return DspTuning{}; }
};

class DspMaskEstimator final : public MaskEstimator {
  public:
    explicit DspMaskEstimator(const StftFormat& format, const DspTuning& tuning = {});

    size_t lookahead_frames() const override { return 0; }
    void estimate(const std::complex<float>* left, const std::complex<float>* right,
                  float* masks) override;
    void reset() override;

  private:
    StftFormat format_;
    DspTuning tuning_;
    size_t time_taps_;            // frames in the causal harmonic (time) median
    size_t freq_taps_;            // bins in the percussive (frequency) median, odd
    std::vector<float> history_;  // time_taps_ × bins magnitudes, ring
    size_t history_pos_ = 0;
    // Per bin, the same time_taps_ values kept sorted: the running median costs O(taps) per
    // frame instead of a selection over the whole window.
    std::vector<float> sorted_history_;
    std::vector<float> magnitude_;
    std::vector<float> padded_;       // magnitudes mirrored at both ends for the frequency median
    std::vector<float> low_prior_;    // per bin: bass band share
    std::vector<float> voice_prior_;  // per bin: vocal band weight
    std::vector<float> window_;       // sorted sliding frequency window, freq_taps_
    // Centre cue averaging (centre_seconds > 0): per bin |L|² + |R|² and 2·Re(L·R*).
    float centre_keep_ = 0.0f;
    std::vector<float> power_avg_, cross_avg_;
    // Vocal evidence hold (vocal_hold_seconds > 0): per bin, decayed by hold_keep_ per frame.
    float hold_keep_ = 0.0f;
    std::vector<float> vocal_hold_;
};

}  // namespace stemsphere
