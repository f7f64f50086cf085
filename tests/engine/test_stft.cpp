// STFT properties the separation relies on: analysis + synthesis reconstruct the input.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "engine/stft.h"

namespace stemsphere {
namespace {

double reconstruction_error_db(size_t fft_size, size_t hop) {
    Stft stft(fft_size, hop);
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    const size_t frames = 40;
    const size_t len = fft_size + frames * hop;
    std::vector<float> x(len), y(len + fft_size, 0.0f);
    for (auto& v : x) v = dist(rng);
    std::vector<std::complex<float>> spec(stft.bins());
    for (size_t start = 0; start + fft_size <= len; start += hop) {
        stft.analyze(x.data() + start, spec.data());
        stft.synthesize_add(spec.data(), y.data() + start);
    }
    // Only samples covered by a full set of overlapping frames are reconstructed.
    double err = 0.0, sig = 0.0;
    for (size_t i = fft_size; i + fft_size < len; ++i) {
        err += std::pow(static_cast<double>(x[i]) - static_cast<double>(y[i]), 2);
        sig += std::pow(static_cast<double>(x[i]), 2);
    }
    return 10.0 * std::log10(err / sig);
}

TEST(Stft, PerfectReconstructionAtQuarterHop) {
    for (size_t n : {512u, 1024u, 2048u, 4096u}) {
        EXPECT_LT(reconstruction_error_db(n, n / 4), -120.0) << "fft size " << n;
    }
}

TEST(Stft, PerfectReconstructionAtHalfHop) {
    EXPECT_LT(reconstruction_error_db(1024, 512), -120.0);
}

TEST(Stft, SpectrumOfASineIsConcentratedInItsBin) {
    const size_t n = 1024;
    Stft stft(n, n / 4);
    std::vector<float> x(n);
    const size_t bin = 37;
    for (size_t i = 0; i < n; ++i) {
        x[i] = static_cast<float>(std::sin(2.0 * M_PI * static_cast<double>(bin * i) / n));
    }
    std::vector<std::complex<float>> spec(stft.bins());
    stft.analyze(x.data(), spec.data());
    size_t peak = 0;
    for (size_t k = 1; k < spec.size(); ++k) {
        if (std::abs(spec[k]) > std::abs(spec[peak])) peak = k;
    }
    EXPECT_EQ(peak, bin);
}

}  // namespace
}  // namespace stemsphere
