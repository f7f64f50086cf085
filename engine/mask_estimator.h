#pragma once
// The separation back end's door: per STFT hop it receives the stereo spectrum of the newest
// frame and returns four soft masks (vocals, drums, bass, other) for the frame that is
// lookahead_frames() hops old. The masks of each bin sum to 1 (mixture consistency), so the
// stems always sum to the input whatever the back end.
//
// Real-time contract: estimate() runs on the audio thread — no allocation, lock or syscall.
// Construction/loading happens off it (LV2 worker or instantiate()).
#include <complex>
#include <cstddef>

namespace stemsphere {

inline constexpr size_t kStemCount = 4;
enum class Stem : size_t { kVocals = 0, kDrums = 1, kBass = 2, kOther = 3 };
inline constexpr const char* kStemNames[kStemCount] = {"vocals", "drums", "bass", "other"};

struct StftFormat {
    double sample_rate = 44100.0;
    size_t fft_size = 1024;
    size_t hop = 256;
    size_t bins() const { return fft_size / 2 + 1; }
    // Centre frequency of bin k in Hz.
    double bin_hz(size_t k) const {
        return static_cast<double>(k) * sample_rate / static_cast<double>(fft_size);
    }
};

class MaskEstimator {
  public:
    virtual ~MaskEstimator() = default;

    // Frames of look-ahead: the masks returned by estimate() belong to the frame pushed that many
    // calls earlier. The engine delays the spectra by as much and reports it as latency.
    virtual size_t lookahead_frames() const = 0;

    // left/right: format().bins() values each, the newest frame. masks: kStemCount × bins
    // floats, stem-major (masks[s * bins + k]), each in [0, 1], Σ_s masks[s*bins+k] == 1.
    virtual void estimate(const std::complex<float>* left, const std::complex<float>* right,
                          float* masks) = 0;

    // Forget all history (transport jump, activate()).
    virtual void reset() = 0;
};

}  // namespace stemsphere
