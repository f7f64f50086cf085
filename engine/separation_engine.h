#pragma once
// STFT separation of a stereo signal into four stems, one hop at a time. The back end (a
// MaskEstimator) only supplies masks; this class owns the analysis, the look-ahead delay of the
// spectra, the overlap-add synthesis and the dry (delayed input) path. "Other" is formed in the
// time domain as dry − vocals − drums − bass, so the four stems sum to the delayed input
// exactly (up to float rounding) whatever the back end returns.
//
// Hop contract: process_hop() takes hop() new input frames and returns hop() output frames that
// lie hop_latency() frames behind them. Everything here is allocated in the constructor.
#include <complex>
#include <memory>
#include <vector>

#include "engine/mask_estimator.h"
#include "engine/stft.h"

namespace stemsphere {

// Output channel order of one hop: dry L/R, then each stem L/R in Stem order.
inline constexpr size_t kDryChannels = 2;
inline constexpr size_t kHopChannels = kDryChannels + 2 * kStemCount;

// STFT size and hop for a host rate: ~23 ms windows at any rate (1024 at 44.1/48 kHz).
StftFormat stft_format_for_rate(double sample_rate);

class SeparationEngine {
  public:
    SeparationEngine(const StftFormat& format, std::unique_ptr<MaskEstimator> estimator);

    const StftFormat& format() const { return format_; }
    size_t hop() const { return format_.hop; }
    // Delay from a hop's input to the same audio in process_hop()'s output.
    size_t hop_latency() const { return format_.fft_size - format_.hop + lookahead_ * format_.hop; }

    // in_l/in_r: hop() finite samples. out: kHopChannels pointers of hop() samples.
    void process_hop(const float* in_l, const float* in_r, float* const* out);
    void reset();

  private:
    StftFormat format_;
    std::unique_ptr<MaskEstimator> estimator_;
    size_t lookahead_;
    Stft stft_;
    size_t bins_;
    // Input history per channel, a ring of fft_size + lookahead·hop samples: the analysis frame
    // is its newest fft_size samples, the dry hop its oldest hop samples.
    std::vector<float> history_[2];
    size_t history_write_ = 0;
    std::vector<float> frame_;                  // fft_size, analysis scratch
    std::vector<std::complex<float>> spectra_;  // (lookahead+1) × 2 × bins ring
    size_t spectra_newest_ = 0;
    std::vector<float> masks_;                 // kStemCount × bins
    std::vector<std::complex<float>> masked_;  // bins scratch
    std::vector<float> ola_;                   // 3 synthesised stems × 2 ch × fft_size
};

}  // namespace stemsphere
