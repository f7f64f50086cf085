#pragma once
// Real-input FFT of one fixed size on fftw3f. Planning happens in the constructor (never on the
// audio thread); execute() is real-time safe: it runs a precomputed plan on buffers owned here.
#include <complex>
#include <cstddef>

typedef struct fftwf_plan_s* fftwf_plan;

namespace stemsphere {

class RealFft {
  public:
    explicit RealFft(size_t size);
    ~RealFft();
    RealFft(const RealFft&) = delete;
    RealFft& operator=(const RealFft&) = delete;

    size_t size() const { return size_; }
    size_t bins() const { return size_ / 2 + 1; }

    // Time-domain buffer of size() samples: fill it, then forward() writes spectrum().
    float* time() { return time_; }
    // bins() complex values; inverse() reads it and writes time() (unnormalised, like fftw).
    std::complex<float>* spectrum() { return spectrum_; }

    void forward();
    void inverse();

  private:
    size_t size_;
    float* time_ = nullptr;
    std::complex<float>* spectrum_ = nullptr;
    fftwf_plan forward_plan_ = nullptr;
    fftwf_plan inverse_plan_ = nullptr;
};

}  // namespace stemsphere
