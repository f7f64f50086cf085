#pragma once
// One plugin instance's whole audio path, free of LV2: host blocks of any length go into a hop
// FIFO; each full hop is separated (SeparationEngine), mixed (gain/mute/solo), placed around the
// listener (BinauralRenderer, partition = hop, so it adds no latency), cross-faded with the dry
// signal when bypassed, and the results leave one hop later. latency() = engine hop latency + one
// hop, constant for a given rate and back end, and exact: an impulse comes out exactly latency()
// frames later.
//
// Real-time contract: process() never allocates, locks or blocks. Construction is off-thread.
#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/binaural/binaural_renderer.h"
#include "engine/neural/stem_choice_estimator.h"
#include "engine/quality_modes.h"
#include "engine/separation_engine.h"

namespace stemsphere {

struct StemControls {
    float gain_db = 0.0f;
    bool mute = false;
    bool solo = false;
};

// Where a stem sits around the listener (degrees, metres); see BinauralRenderer::set_source.
struct StemPlacement {
    float azimuth_deg = 0.0f;  // +90 = left
    float elevation_deg = 0.0f;
    float distance_m = 1.0f;  // unity gain at 1 m
    float width_deg = 60.0f;  // a stereo stem's L/R channels at ±width/2, like speakers
};

struct ProcessorControls {
    bool enabled = true;  // false: main output is the delayed input, stem outputs fade out
    std::array<StemControls, kStemCount> stems{};
    // Binaural main mix (needs an HRTF set); off: the main output is the plain sum of stems.
    bool binaural = true;
    std::array<StemPlacement, kStemCount> placement{};
    float head_yaw_deg = 0.0f;
    float head_pitch_deg = 0.0f;
    float head_roll_deg = 0.0f;
};

// The model files a mode runs, inside a models folder: its own first (its look-ahead sets the
// latency), then those of the modes it averages in (engine/quality_modes.h). Empty for DSP.
std::vector<std::string> quality_mode_model_files(QualityMode mode);
// Per stem, whether a neural mode takes the mask from its networks or from the DSP back end, and
// how far the vocal mask leans on the DSP's agreement (StemChoiceEstimator): the mode table's row
// (engine/quality_modes.h), chosen on the dev split (docs/models.md, "Do no harm").
StemChoice quality_mode_stem_choice(QualityMode mode);

// Output channel order of process(): main L/R, then each stem L/R in Stem order.
inline constexpr size_t kOutputChannels = 2 + 2 * kStemCount;

class BlendedMaskEstimator;

class Processor {
  public:
    // fallback: when the estimator is a blend of a neural ensemble (primary) and the DSP back end
    // (secondary) that set_dsp_fallback() moves between; owned by `estimator`, may be null.
    Processor(double sample_rate, std::unique_ptr<MaskEstimator> estimator,
              BlendedMaskEstimator* fallback = nullptr);
    // The free DSP back end at the rate's STFT format.
    static std::unique_ptr<Processor> with_dsp_backend(double sample_rate);
    // Off the audio thread: a processor for `mode`, loading its model from `models_dir`.
    // nullptr and a one-line *error (missing/corrupt model, wrong variant, a Live model with
    // look-ahead, a Studio model looking ahead more than 1 s).
    // Metered modes also run the DSP back end, aligned to their look-ahead, for
    // set_dsp_fallback().
    static std::unique_ptr<Processor> create(double sample_rate, QualityMode mode,
                                             const std::string& models_dir, std::string* error);

    // Real-time safe. On: the separation cross-fades to the DSP back end over kFallbackFadeHops
    // hops (about 23 ms at any rate), at unchanged latency; off: back to the mode's networks.
    // reset() completes a fade at once. No effect on a processor without networks.
    void set_dsp_fallback(bool on);
    // True while any DSP share is heard (fading or faded); false for DSP-only processors.
    bool dsp_fallback_audible() const;
    static constexpr size_t kFallbackFadeHops = 4;

    size_t latency() const { return engine_.hop_latency() + engine_.hop(); }
    // Off the audio thread: the latency() a processor for `mode` would have at this rate, from
    // the look-ahead its model files declare (read, not run); nullopt and *error when a file is
    // missing or corrupt (create() would fail too).
    static std::optional<size_t> mode_latency(double sample_rate, QualityMode mode,
                                              const std::string& models_dir, std::string* error);
    const StftFormat& format() const { return engine_.format(); }

    void set_controls(const ProcessorControls& c) { controls_ = c; }

    // Length of the HRTF filters the renderer is prepared for at this rate (load sets with it).
    static uint32_t hrtf_filter_taps(double sample_rate);
    // Real-time safe pointer swap; the new filters fade in. The caller keeps ownership and may
    // free the previous set once this returns. nullptr: no spatialisation (plain sum).
    // False (nothing changes) when the set was prepared for another rate or filter length.
    bool set_hrtf(const HrtfSet* set);
    const HrtfSet* hrtf() const { return renderer_.hrtf(); }
    // Any n ≥ 0; in/out may alias (in-place hosts). out: kOutputChannels pointers.
    void process(const float* in_l, const float* in_r, float* const* out, size_t n);
    // Clears all audio history (activate()); the next output is silence for latency() frames.
    void reset();

  private:
    void run_hop();

    SeparationEngine engine_;
    BlendedMaskEstimator* fallback_;  // inside engine_'s estimator, or null
    bool fallback_on_ = false;
    BinauralRenderer renderer_;
    ProcessorControls controls_;
    size_t hop_;
    size_t fill_ = 0;  // frames of the current hop already exchanged
    std::vector<float> in_hop_[2];
    std::vector<float> engine_out_;  // kHopChannels × hop
    std::vector<float> out_hop_;     // kOutputChannels × hop, emitted during the next hop
    std::vector<float> gained_;      // 2·kStemCount × hop: stems after gain/mute/solo
    std::vector<float> binaural_;    // 2 × hop
    // Smoothed per-sample gains (linear) and the enable cross-fade, carried across hops.
    std::array<float, kStemCount> gain_state_{};
    float enable_state_ = 1.0f;
    float binaural_state_ = 0.0f;  // cross-fade plain sum → binaural (no set loaded yet)
    float smoothing_coeff_;        // one-pole coefficient for ~10 ms
};

}  // namespace stemsphere
