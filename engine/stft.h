#pragma once
// Short-time Fourier transform of one frame at a time, with windows chosen for perfect
// reconstruction by overlap-add: analysis and synthesis windows are both sqrt(periodic Hann), so
// their product is a periodic Hann, whose shifts by hop = N/4 (or N/2, N/8...) sum to N/(2·hop).
// synthesize_add() folds that constant and fftw's 1/N into the synthesis window, so
//   Σ_frames synthesize_add(analyze(frame)) == input, exactly up to float rounding.
// Both calls are real-time safe (no allocation; plans made in the constructor).
#include <complex>
#include <cstddef>
#include <vector>

#include "engine/fft.h"

namespace stemsphere {

class Stft {
  public:
    // fft_size even, hop divides fft_size / 2.
    Stft(size_t fft_size, size_t hop);

    size_t fft_size() const { return fft_.size(); }
    size_t hop() const { return hop_; }
    size_t bins() const { return fft_.bins(); }

    // frame: fft_size() samples, oldest first. spectrum: bins() values (unnormalised forward FFT
    // of the windowed frame).
    void analyze(const float* frame, std::complex<float>* spectrum);
    // Inverse transform of spectrum, synthesis-windowed, ADDED into ola[0 .. fft_size()).
    void synthesize_add(const std::complex<float>* spectrum, float* ola);

    // The analysis window (length fft_size()), e.g. for feature extractors that must match it.
    const std::vector<float>& analysis_window() const { return analysis_; }

  private:
    RealFft fft_;
    size_t hop_;
    std::vector<float> analysis_;
    std::vector<float> synthesis_;
};

}  // namespace stemsphere
