#include "engine/fft.h"

#include <fftw3.h>

#include <cassert>
#include <mutex>
#include <new>

namespace stemsphere {

namespace {
// FFTW's planner is not thread-safe across instances that one host may create on several threads.
// Making it thread-safe once per process plus our own lock keeps planning safe even when another
// plugin in the same host uses fftw3f without the thread-safe planner.
std::mutex& planner_mutex() {
    static std::mutex m;
    static std::once_flag once;
    std::call_once(once, [] { fftwf_make_planner_thread_safe(); });
    return m;
}
}  // namespace

RealFft::RealFft(size_t size) : size_(size) {
    assert(size >= 2 && size % 2 == 0);
    std::lock_guard<std::mutex> lock(planner_mutex());
    time_ = fftwf_alloc_real(size_);
    auto* spec = fftwf_alloc_complex(bins());
    if (time_ == nullptr || spec == nullptr) throw std::bad_alloc();
    spectrum_ = reinterpret_cast<std::complex<float>*>(spec);
    const int n = static_cast<int>(size_);
    // FFTW_ESTIMATE: deterministic and instant; MEASURE would spend seconds at instantiation.
    forward_plan_ = fftwf_plan_dft_r2c_1d(n, time_, spec, FFTW_ESTIMATE);
    inverse_plan_ = fftwf_plan_dft_c2r_1d(n, spec, time_, FFTW_ESTIMATE);
    if (forward_plan_ == nullptr || inverse_plan_ == nullptr) throw std::bad_alloc();
    for (size_t i = 0; i < size_; ++i) time_[i] = 0.0f;
}

RealFft::~RealFft() {
    std::lock_guard<std::mutex> lock(planner_mutex());
    if (forward_plan_ != nullptr) fftwf_destroy_plan(forward_plan_);
    if (inverse_plan_ != nullptr) fftwf_destroy_plan(inverse_plan_);
    fftwf_free(time_);
    fftwf_free(reinterpret_cast<fftwf_complex*>(spectrum_));
}

void RealFft::forward() {
    fftwf_execute(forward_plan_);
}

// c2r destroys its input; callers treat spectrum() as scratch after inverse().
void RealFft::inverse() {
    fftwf_execute(inverse_plan_);
}

}  // namespace stemsphere
