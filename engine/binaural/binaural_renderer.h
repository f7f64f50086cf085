#pragma once
// Binaural rendering of the four separated stereo stems: each stem channel is a virtual source
// (8 sources x 2 ears), filtered with interpolated HRTFs by uniformly partitioned overlap-save
// convolution (partition = block = the separation hop H), summed into one stereo pair.
//
// Latency: with Config::any_block_size == false, process() must be called with exactly
// block_frames frames and adds no latency (the current block sits in the newest partition). With
// any_block_size == true, any n >= 1 is accepted through an internal FIFO that adds exactly
// block_frames frames of latency (latency_frames()).
//
// Motion: when a source, the head or the HRTF set changes, the filters for the new direction are
// designed at the next block boundary and the block's output cross-fades from the old filters to
// the new ones with a raised cosine over the whole block (no clicks, no zipper noise). Distance
// sets a 1/r gain (ramped over the block) and a gentle air-absorption low-pass.
//
// Threading: construct off the audio thread. set_hrtf(), set_source(), set_head(), reset() and
// process() are real-time safe (no allocation, lock or system call) and must all be called from
// the same (audio) thread.
#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/binaural/hrtf_set.h"
#include "engine/fft.h"

namespace stemsphere {

struct BinauralRendererConfig {
    double sample_rate = 48000.0;
    uint32_t block_frames = 256;      // partition size: the separation hop H
    uint32_t max_filter_taps = 1024;  // longest HrtfSet::filter_taps() that set_hrtf() accepts
    bool any_block_size = false;      // see the latency note above
    // A moving source's filters are re-designed at most this often (at most once a block), and
    // only once it has moved by min_update_angle_deg or the settle time has passed since the
    // last design: bounds the cost of fast automation. Each update cross-fades over one block;
    // 1-degree steps with a cross-fade leak nothing audible (shared/docs/binaural.md 5.3).
    double min_update_interval_s = 0.005;
    double min_update_angle_deg = 1.0;
    double settle_s = 0.05;
    HrtfInterpolation interpolation = HrtfInterpolation::kBarycentric;
    bool air_absorption = true;
    float reference_distance_m = 1.0f;  // distance with unity gain
    float near_limit_m = 0.25f;         // 1/r gain stops growing here (+12 dB at the default)
};

class BinauralRenderer {
  public:
    using Config = BinauralRendererConfig;
    static constexpr int kStemCount = 4;           // vocals, drums, bass, other
    static constexpr int kVirtualSourceCount = 8;  // stem channels: vocals L, R, drums L, R, ...

    // Allocates everything (FFT plans, filter and history buffers). Throws std::invalid_argument
    // for a bad configuration, std::bad_alloc when out of memory.
    explicit BinauralRenderer(const Config& config);
    ~BinauralRenderer();
    BinauralRenderer(const BinauralRenderer&) = delete;
    BinauralRenderer& operator=(const BinauralRenderer&) = delete;

    const Config& config() const { return config_; }
    uint32_t latency_frames() const { return config_.any_block_size ? config_.block_frames : 0; }

    // Swaps the HRTF set (pointer only; the renderer keeps no reference to the previous set once
    // this returns, so the caller may free it). The new filters fade in like a move. nullptr
    // fades the output to silence. Returns false, keeping the current set, when the set was
    // prepared for another sample rate or has longer filters than max_filter_taps.
    bool set_hrtf(const HrtfSet* set);
    const HrtfSet* hrtf() const { return hrtf_; }

    // Places stem `stem` (0..3) in the world frame: azimuth counter-clockwise from the front in
    // degrees (+90 = left, SOFA convention), elevation up, distance in metres, width = angle
    // between the stem's left and right channel (left channel at azimuth + width / 2). Non-finite
    // values are ignored.
    void set_source(int stem, float azimuth_deg, float elevation_deg, float distance_m,
                    float width_deg);
    // Head orientation in degrees: yaw + turns the head left, pitch + raises the nose, roll +
    // tilts the head to the right (right ear down). Rotates every source the opposite way.
    void set_head(float yaw_deg, float pitch_deg, float roll_deg);

    // Clears all audio history (filters and positions are kept).
    void reset();

    // stems: 8 channel pointers (vocals L, R, drums L, R, bass L, R, other L, R); a null array or
    // null entry is silence. Writes n frames to out_l / out_r (not accumulated).
    void process(const float* const* stems, float* out_l, float* out_r, uint32_t n);

    // Filter designs since construction (for benchmarks: how often motion re-designs filters).
    uint64_t filter_updates() const { return filter_updates_; }

  private:
    struct VirtualSource;
    void process_block(const float* const* in, float* out_l, float* out_r);
    void update_filters();
    void design_source(VirtualSource& s, const Vec3& head_direction);
    void filter_input(int v, const float* in);
    Vec3 head_relative(const Vec3& world) const;

    Config config_;
    uint32_t block_;       // B
    uint32_t partitions_;  // allocated partitions: ceil(max_filter_taps / B)
    uint32_t bins_;        // B + 1
    uint32_t stride_;      // bins rounded up for vector loops
    uint32_t update_interval_frames_;
    uint32_t settle_frames_;
    double update_cos_;  // cos(min_update_angle_deg)
    RealFft fft_;        // 2B
    HrtfSet::Scratch scratch_;
    const HrtfSet* hrtf_ = nullptr;
    bool hrtf_changed_ = false;
    uint32_t active_partitions_ = 0;  // of the current filters
    uint32_t fading_partitions_ = 0;  // max over old and new filters during a fade
    std::array<double, 9> head_{1, 0, 0, 0, 1, 0, 0, 0, 1};  // columns: head axes in world

    struct VirtualSource {
        Vec3 world{1, 0, 0};
        Vec3 current{1, 0, 0};  // head-relative direction of the current filters
        bool moved = false;
        bool fading = false;
        uint32_t frames_since_update = 0;
        uint32_t triangle_hint = 0;
        uint32_t partitions = 0;  // non-zero partitions of the current filters
        float gain = 1.0f, target_gain = 1.0f;
        float air_coefficient = 0.0f, air_state = 0.0f;
        float* history = nullptr;  // 2B samples: previous block, current block
        float* spectra = nullptr;  // FDL: partitions x (re[stride], im[stride])
        float* filters = nullptr;  // [ear][partition] x (re, im)
        float* deltas = nullptr;   // old - new filters of the current fade, same layout
    };
    std::array<VirtualSource, kVirtualSourceCount> sources_;
    uint32_t fdl_head_ = 0;
    std::vector<float> storage_;
    float* accumulators_ = nullptr;  // [ear][re, im]: sum with current filters
    float* differences_ = nullptr;   // [ear][re, im]: sum with (old - new) filters
    float* new_spectrum_ = nullptr;  // one partition spectrum being designed
    float* filter_time_ = nullptr;   // 2 x partitions * B samples (designed left, right)
    float* fade_out_ = nullptr;      // B samples: 1 - raised-cosine fade-in
    float* zeros_ = nullptr;         // B samples of silence
    float* fifo_in_ = nullptr;       // 8 x B
    float* fifo_out_ = nullptr;      // 2 x B
    uint32_t fifo_fill_ = 0;
    uint64_t filter_updates_ = 0;
};

}  // namespace stemsphere
