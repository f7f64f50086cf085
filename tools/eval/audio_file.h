#pragma once
// Multichannel audio held in double precision for scoring: the metrics sum millions of squared
// samples, and float accumulation would drift by more than the 1e-3 dB the validation needs.
#include <cstddef>
#include <string>
#include <vector>

namespace stemsphere::eval {

struct Audio {
    int sample_rate = 0;
    size_t channels = 0;
    std::vector<double> samples;  // interleaved: samples[frame * channels + channel]

    size_t frames() const { return channels == 0 ? 0 : samples.size() / channels; }
    double at(size_t frame, size_t channel) const { return samples[frame * channels + channel]; }
};

// Reads any libsndfile format. Throws std::runtime_error naming the file on any failure.
Audio read_audio(const std::string& path);
// Writes 32-bit float WAV. Throws std::runtime_error naming the file on failure.
void write_audio(const std::string& path, const Audio& audio);

// Copy of `audio` with exactly `frames` frames: truncated, or padded with silence (museval's rule
// for estimates whose length differs from the reference).
Audio fit_length(const Audio& audio, size_t frames);

// Element-wise sum; all parts must share rate, channels and length (throws otherwise).
Audio sum_audio(const std::vector<const Audio*>& parts);

// One channel of an Audio as a plain vector.
std::vector<double> channel_of(const Audio& audio, size_t channel);

}  // namespace stemsphere::eval
