#include "engine/binaural/binaural_metrics.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <complex>
#include <limits>
#include <numbers>
#include <vector>

#include "engine/fft.h"

namespace stemsphere {

namespace {

size_t fft_size_for(size_t length, size_t minimum) {
    return std::bit_ceil(std::max({length, minimum, size_t{2}}));
}

// Zero-padded spectrum of x (bins = n / 2 + 1).
std::vector<std::complex<double>> spectrum(std::span<const float> x, size_t n) {
    RealFft fft(n);
    std::fill(fft.time(), fft.time() + n, 0.0f);
    std::copy_n(x.begin(), std::min(x.size(), n), fft.time());
    fft.forward();
    return {fft.spectrum(), fft.spectrum() + fft.bins()};
}

double bin_frequency(size_t bin, size_t n, double sample_rate) {
    return static_cast<double>(bin) * sample_rate / static_cast<double>(n);
}

}  // namespace

double interaural_time_difference(std::span<const float> left, std::span<const float> right,
                                  double sample_rate, double lowpass_hz, double max_lag_s) {
    constexpr size_t kOversampling = 8;
    const size_t n = fft_size_for(2 * std::max(left.size(), right.size()), 64);
    const auto l = spectrum(left, n);
    const auto r = spectrum(right, n);
    RealFft upsampled(n * kOversampling);
    std::complex<float>* cross = upsampled.spectrum();
    std::fill(cross, cross + upsampled.bins(), std::complex<float>());
    for (size_t b = 0; b < l.size(); ++b) {
        // |H|^2 of a Butterworth of order 4 is 1 / (1 + (f/fc)^8); forward-backward filtering of
        // both signals weights the cross spectrum by |H|^4.
        const double ratio = bin_frequency(b, n, sample_rate) / lowpass_hz;
        const double h2 = 1.0 / (1.0 + std::pow(ratio, 8.0));
        cross[b] = std::complex<float>(r[b] * std::conj(l[b]) * (h2 * h2));
    }
    upsampled.inverse();
    const float* xc = upsampled.time();
    const size_t total = n * kOversampling;
    const auto max_lag = static_cast<long>(max_lag_s * sample_rate * kOversampling);
    double best = -std::numeric_limits<double>::infinity();
    long best_lag = 0;
    for (long lag = -max_lag; lag <= max_lag; ++lag) {
        const size_t index =
            lag >= 0 ? static_cast<size_t>(lag) : total - static_cast<size_t>(-lag);
        if (double(xc[index]) > best) best = double(xc[index]), best_lag = lag;
    }
    return static_cast<double>(best_lag) / (static_cast<double>(kOversampling) * sample_rate);
}

double band_energy_db(std::span<const float> x, double sample_rate, double low_hz, double high_hz,
                      size_t fft_size) {
    const size_t n = fft_size_for(x.size(), fft_size);
    const auto s = spectrum(x, n);
    double e = 0.0;
    size_t count = 0;
    for (size_t b = 0; b < s.size(); ++b) {
        const double f = bin_frequency(b, n, sample_rate);
        if (f >= low_hz && f < high_hz) e += std::norm(s[b]), ++count;
    }
    return 10.0 * std::log10(e / static_cast<double>(std::max<size_t>(count, 1)) + 1e-300);
}

double interaural_level_difference_db(std::span<const float> left, std::span<const float> right,
                                      double sample_rate, double low_hz, double high_hz,
                                      size_t fft_size) {
    const size_t n = std::max(fft_size, std::max(left.size(), right.size()));
    return band_energy_db(left, sample_rate, low_hz, high_hz, n) -
           band_energy_db(right, sample_rate, low_hz, high_hz, n);
}

double spectral_distortion_db(std::span<const float> reference, std::span<const float> test,
                              double sample_rate, double low_hz, double high_hz, size_t fft_size) {
    const size_t n = fft_size_for(std::max(reference.size(), test.size()), fft_size);
    const auto a = spectrum(reference, n);
    const auto b = spectrum(test, n);
    double sum = 0.0;
    size_t count = 0;
    for (size_t k = 0; k < a.size(); ++k) {
        const double f = bin_frequency(k, n, sample_rate);
        if (f < low_hz || f > high_hz) continue;
        const double d = 20.0 * std::log10((std::abs(a[k]) + 1e-12) / (std::abs(b[k]) + 1e-12));
        sum += d * d;
        ++count;
    }
    return count > 0 ? std::sqrt(sum / static_cast<double>(count)) : 0.0;
}

double high_frequency_leakage_db(std::span<const float> signal, double sample_rate,
                                 double split_hz) {
    const size_t n = fft_size_for(signal.size(), 2);
    std::vector<float> windowed(signal.size());
    for (size_t i = 0; i < signal.size(); ++i) {
        const double w =
            0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * (static_cast<double>(i) + 0.5) /
                                 static_cast<double>(signal.size()));
        windowed[i] = static_cast<float>(double(signal[i]) * w);
    }
    const auto s = spectrum(windowed, n);
    double high = 0.0, total = 0.0;
    for (size_t k = 0; k < s.size(); ++k) {
        const double e = std::norm(s[k]);
        total += e;
        if (bin_frequency(k, n, sample_rate) > split_hz) high += e;
    }
    return 10.0 * std::log10((high + 1e-300) / (total + 1e-300));
}

SwitchArtefacts switch_artefacts(std::span<const float> left, std::span<const float> right,
                                 size_t at, double sample_rate) {
    SwitchArtefacts f{-1e300, -1e300};
    if (at < 8192 || at + 8192 > std::min(left.size(), right.size())) return {NAN, NAN};
    for (const auto y : {left, right}) {
        f.leakage_db = std::max(f.leakage_db,
                                high_frequency_leakage_db(y.subspan(at - 2048, 4096), sample_rate));
        auto max_step = [&y](size_t from, size_t to) {
            double m = 0.0;
            for (size_t i = from; i < to; ++i) m = std::max(m, double(std::fabs(y[i] - y[i - 1])));
            return m;
        };
        const double steady =
            std::max(max_step(at - 8192, at - 2048), max_step(at + 2048, at + 8192));
        f.step_db = std::max(f.step_db, 20.0 * std::log10(max_step(at - 2048, at + 2048) / steady));
    }
    return f;
}

}  // namespace stemsphere
