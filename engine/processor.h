#pragma once
// One plugin instance's whole audio path, free of LV2: host blocks of any length go into a hop
// FIFO; each full hop is separated (SeparationEngine), mixed (gain/mute/solo, bypass cross-fade)
// and the results leave one hop later. latency() = engine hop latency + one hop, constant for a
// given rate and back end, and exact: an impulse comes out exactly latency() frames later.
//
// Real-time contract: process() never allocates, locks or blocks. Construction is off-thread.
#include <array>
#include <memory>
#include <vector>

#include "engine/separation_engine.h"

namespace stemsphere {

struct StemControls {
    float gain_db = 0.0f;
    bool mute = false;
    bool solo = false;
};

struct ProcessorControls {
    bool enabled = true;  // false: main output is the delayed input, stem outputs fade out
    std::array<StemControls, kStemCount> stems{};
};

// Output channel order of process(): main L/R, then each stem L/R in Stem order.
inline constexpr size_t kOutputChannels = 2 + 2 * kStemCount;

class Processor {
  public:
    Processor(double sample_rate, std::unique_ptr<MaskEstimator> estimator);
    // The free DSP back end at the rate's STFT format.
    static std::unique_ptr<Processor> with_dsp_backend(double sample_rate);

    size_t latency() const { return engine_.hop_latency() + engine_.hop(); }
    const StftFormat& format() const { return engine_.format(); }

    void set_controls(const ProcessorControls& c) { controls_ = c; }
    // Any n ≥ 0; in/out may alias (in-place hosts). out: kOutputChannels pointers.
    void process(const float* in_l, const float* in_r, float* const* out, size_t n);
    // Clears all audio history (activate()); the next output is silence for latency() frames.
    void reset();

  private:
    void run_hop();

    SeparationEngine engine_;
    ProcessorControls controls_;
    size_t hop_;
    size_t fill_ = 0;  // frames of the current hop already exchanged
    std::vector<float> in_hop_[2];
    std::vector<float> engine_out_;  // kHopChannels × hop
    std::vector<float> out_hop_;     // kOutputChannels × hop, emitted during the next hop
    // Smoothed per-sample gains (linear) and the enable cross-fade, carried across hops.
    std::array<float, kStemCount> gain_state_{};
    float enable_state_ = 1.0f;
    float smoothing_coeff_;  // one-pole coefficient for ~10 ms
};

}  // namespace stemsphere
