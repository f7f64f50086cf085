#pragma once
// A set of head-related transfer functions prepared for one host sample rate: read from a SOFA
// file (AES69, SimpleFreeFieldHRIR) with libmysofa, resampled with libsamplerate, split into an
// onset-aligned filter plus a separate per-ear delay (the interaural time difference), and
// triangulated so that any direction is interpolated from its three enclosing measurements.
//
// Interpolating HRIRs that still carry their ITD smears the onsets (comb filtering, worse than no
// interpolation at all); blending onset-aligned spectra and the delays separately is what 3D
// Tune-In and SPARTA's TRI_PS mode do (docs/binaural.md, measurements in shared/docs/binaural.md).
//
// Loading and building are non-real-time (LV2 worker). design_filters() is real-time safe.
#include <complex>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/binaural/sphere_triangulation.h"

namespace stemsphere {

class RealFft;

// Raw impulse responses as stored in a file (or built in memory): M measurements, 2 ears.
struct HrtfMeasurements {
    double sample_rate = 0.0;
    uint32_t taps = 0;  // samples per impulse response
    // One unit vector per measurement (SOFA frame: +x front, +y left, +z up).
    std::vector<Vec3> directions;
    // [measurement][ear (0 = left, 1 = right)][tap]
    std::vector<float> impulse_responses;
    // Optional broadband delays in samples at sample_rate (SOFA Data.Delay), [measurement][ear];
    // empty means zero.
    std::vector<float> delays;

    size_t count() const { return directions.size(); }
    const float* impulse_response(size_t m, int ear) const {
        return impulse_responses.data() + (m * 2 + static_cast<size_t>(ear)) * taps;
    }
};

enum class HrtfInterpolation {
    kBarycentric,  // three enclosing measurements, aligned spectra + delays (default)
    kNearest,      // nearest measurement by great-circle angle (reference / "no interpolation")
};

struct HrtfSetOptions {
    // Length of every runtime filter (delay included) at the host rate; 0 keeps the whole
    // measured response. Shorter filters are cheaper; 128-256 taps after the onset lose about
    // 1 dB of spectral detail.
    uint32_t filter_taps = 0;
};

class HrtfSet {
  public:
    using Options = HrtfSetOptions;

    // Scratch for design_filters(), sized off the audio thread for sets up to max_filter_taps.
    class Scratch {
      public:
        explicit Scratch(uint32_t max_filter_taps);
        ~Scratch();
        Scratch(const Scratch&) = delete;
        Scratch& operator=(const Scratch&) = delete;
        uint32_t max_filter_taps() const { return max_filter_taps_; }

      private:
        friend class HrtfSet;
        uint32_t max_filter_taps_;
        std::vector<std::unique_ptr<RealFft>> fft_by_log2_;  // one per power-of-two size
        std::vector<float> split_;                           // blended spectrum, re then im
    };

    // Reads `path` and prepares it for `sample_rate`. Returns nullptr and a human-readable reason
    // in *error ("cannot open ...", "not a SOFA file ...", "convention X, need
    // SimpleFreeFieldHRIR", "NaN in HRIR data", ...). Never throws for bad files.
    static std::unique_ptr<HrtfSet> load(const std::string& path, double sample_rate,
                                         std::string* error, const Options& options = {});
    static std::unique_ptr<HrtfSet> load(const std::string& path, double sample_rate,
                                         std::string* error, uint32_t filter_taps) {
        return load(path, sample_rate, error, Options{filter_taps});
    }

    // Only the file reading and validation step of load().
    static bool read_sofa(const std::string& path, HrtfMeasurements* out, std::string* error);

    // Validation (dimensions, finite values, rate) and preparation of in-memory measurements.
    static std::unique_ptr<HrtfSet> from_measurements(const HrtfMeasurements& measurements,
                                                      double sample_rate, std::string* error,
                                                      const Options& options = {});

    // The same prepared data restricted to the given measurements (indices into this set's
    // measurements), re-triangulated. Delays keep their common reference, so filters of the
    // kept directions are unchanged. Used for leave-one-out evaluation and sparser grids.
    std::unique_ptr<HrtfSet> subset(std::span<const uint32_t> keep, std::string* error) const;

    ~HrtfSet();
    HrtfSet(const HrtfSet&) = delete;
    HrtfSet& operator=(const HrtfSet&) = delete;

    double sample_rate() const { return sample_rate_; }
    uint32_t filter_taps() const { return filter_taps_; }
    size_t measurement_count() const { return measured_count_; }
    const Vec3& measurement_direction(size_t m) const { return directions_[m]; }
    // Broadband delay of measurement m's ear relative to the earliest arrival in the set, in
    // samples at sample_rate() (what the ITD of the rendered filters is made of).
    float measurement_delay(size_t m, int ear) const { return delay_[m * 2 + size_t(ear)]; }
    const SphereTriangulation& triangulation() const { return *triangulation_; }
    // Index of the measurement nearest to `direction` by great-circle angle.
    size_t nearest_measurement(const Vec3& direction) const;

    // Writes the filter_taps() long impulse responses for `direction` (head frame, any length)
    // into left/right. Real-time safe given scratch sized for at least filter_taps().
    // *triangle_hint carries the previous triangle of a moving source between calls (0 is fine).
    void design_filters(const Vec3& direction, HrtfInterpolation mode, uint32_t* triangle_hint,
                        Scratch& scratch, float* left, float* right) const;

  private:
    HrtfSet() = default;
    // Aligned spectra + delays of the points (measurements, then synthesised poles) in
    // `points_`, and the triangulation over them.
    bool finish(std::string* error);
    void add_missing_poles();

    double sample_rate_ = 0.0;
    uint32_t filter_taps_ = 0;
    uint32_t spectrum_size_ = 0;  // FFT size of the stored aligned spectra (power of two)
    uint32_t bins_ = 0;           // spectrum_size_ / 2 + 1
    uint32_t padded_bins_ = 0;    // bins_ rounded up to a multiple of 4 (vector loops)
    size_t measured_count_ = 0;
    // Per point (measurements first, then synthesised poles): unit direction, per-ear delay and
    // per-ear aligned spectrum [point][ear] x (re[padded_bins_], im[padded_bins_]).
    std::vector<Vec3> directions_;
    std::vector<float> delay_;
    std::vector<float> aligned_;
    size_t record_floats() const { return 2 * size_t{padded_bins_}; }
    float* record(size_t point, int ear) {
        return aligned_.data() + (point * 2 + size_t(ear)) * record_floats();
    }
    const float* record(size_t point, int ear) const {
        return aligned_.data() + (point * 2 + size_t(ear)) * record_floats();
    }
    std::unique_ptr<SphereTriangulation> triangulation_;
};

}  // namespace stemsphere
