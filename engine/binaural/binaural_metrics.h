#pragma once
// Objective measures of binaural filters and renders (ITD, ILD, spectral distortion, high-frequency
// leakage), as defined in shared/docs/binaural.md section 5. Non-real-time: they allocate. Shared
// by the unit tests, the benchmark and evaluation tools so that every figure is computed one way.
#include <span>

namespace stemsphere {

// Interaural time difference in seconds by cross-correlation of the two responses after a
// zero-phase 4th-order Butterworth low-pass at `lowpass_hz` (applied forward and backward),
// interpolated to 1/8 sample. Positive when the right ear lags (source on the left). Only lags
// within +-max_lag_s are considered.
double interaural_time_difference(std::span<const float> left, std::span<const float> right,
                                  double sample_rate, double lowpass_hz = 1500.0,
                                  double max_lag_s = 0.0015);

// Mean energy per FFT bin in dB of x's spectrum (zero-padded to at least fft_size points) over
// [low_hz, high_hz): |H(f)|^2 averaged over the band, comparable across rates and FFT sizes.
double band_energy_db(std::span<const float> x, double sample_rate, double low_hz, double high_hz,
                      size_t fft_size = 4096);

// Energy ratio left / right in dB over [low_hz, high_hz) of the responses' spectra (zero-padded
// to at least fft_size points).
double interaural_level_difference_db(std::span<const float> left, std::span<const float> right,
                                      double sample_rate, double low_hz, double high_hz,
                                      size_t fft_size = 4096);

// RMS over FFT bins in [low_hz, high_hz] of 20 log10 |H_reference / H_test| in dB.
double spectral_distortion_db(std::span<const float> reference, std::span<const float> test,
                              double sample_rate, double low_hz = 200.0, double high_hz = 16000.0,
                              size_t fft_size = 1024);

// Energy above `split_hz` relative to the total, in dB, of a Hann-windowed segment of `signal`
// (the click measure of a moving source: a pure tone leaks broadband energy when filters switch).
double high_frequency_leakage_db(std::span<const float> signal, double sample_rate,
                                 double split_hz = 2000.0);

// Click figures of a render around a filter switch at sample `at` (needs 8192 samples of signal
// on both sides): HF leakage (above) of the 4096 samples centred on `at`, and the largest sample
// step within +-2048 of `at` in dB relative to the largest step in the steady state before and
// after (8192..2048 samples away). Worse ear of the two.
struct SwitchArtefacts {
    double leakage_db = 0.0;
    double step_db = 0.0;
};
SwitchArtefacts switch_artefacts(std::span<const float> left, std::span<const float> right,
                                 size_t at, double sample_rate);

}  // namespace stemsphere
