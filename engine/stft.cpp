#include "engine/stft.h"

#include <cassert>
#include <cmath>
#include <numbers>

namespace stemsphere {

Stft::Stft(size_t fft_size, size_t hop)
    : fft_(fft_size), hop_(hop), analysis_(fft_size), synthesis_(fft_size) {
    assert(hop > 0 && (fft_size / 2) % hop == 0);
    // Σ over shifts of periodic Hann at this hop = N / (2·hop); fftw's inverse scales by N.
    const double ola_gain = static_cast<double>(fft_size) / (2.0 * static_cast<double>(hop));
    const double n = static_cast<double>(fft_size);
    for (size_t i = 0; i < fft_size; ++i) {
        const double hann =
            0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * static_cast<double>(i) / n);
        const double w = std::sqrt(hann);
        analysis_[i] = static_cast<float>(w);
        synthesis_[i] = static_cast<float>(w / (ola_gain * n));
    }
}

void Stft::analyze(const float* frame, std::complex<float>* spectrum) {
    float* t = fft_.time();
    const size_t n = fft_.size();
    for (size_t i = 0; i < n; ++i) t[i] = frame[i] * analysis_[i];
    fft_.forward();
    const std::complex<float>* s = fft_.spectrum();
    for (size_t k = 0; k < fft_.bins(); ++k) spectrum[k] = s[k];
}

void Stft::synthesize_add(const std::complex<float>* spectrum, float* ola) {
    std::complex<float>* s = fft_.spectrum();
    for (size_t k = 0; k < fft_.bins(); ++k) s[k] = spectrum[k];
    fft_.inverse();
    const float* t = fft_.time();
    const size_t n = fft_.size();
    for (size_t i = 0; i < n; ++i) ola[i] += t[i] * synthesis_[i];
}

}  // namespace stemsphere
