#include "tools/eval/audio_file.h"

#include <sndfile.h>

#include <algorithm>
#include <stdexcept>

namespace stemsphere::eval {

Audio read_audio(const std::string& path) {
    SF_INFO info{};
    SNDFILE* file = sf_open(path.c_str(), SFM_READ, &info);
    if (file == nullptr) {
        throw std::runtime_error("cannot read audio file '" + path + "': " + sf_strerror(nullptr));
    }
    if (info.channels <= 0 || info.samplerate <= 0 || info.frames < 0) {
        sf_close(file);
        throw std::runtime_error("audio file '" + path + "' has no valid channels or rate");
    }
    Audio audio;
    audio.sample_rate = info.samplerate;
    audio.channels = static_cast<size_t>(info.channels);
    audio.samples.resize(static_cast<size_t>(info.frames) * audio.channels);
    const sf_count_t got = sf_readf_double(file, audio.samples.data(), info.frames);
    sf_close(file);
    if (got != info.frames) {
        throw std::runtime_error("audio file '" + path + "' is truncated (read " +
                                 std::to_string(got) + " of " + std::to_string(info.frames) +
                                 " frames)");
    }
    return audio;
}

void write_audio(const std::string& path, const Audio& audio) {
    SF_INFO info{};
    info.samplerate = audio.sample_rate;
    info.channels = static_cast<int>(audio.channels);
    info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
    SNDFILE* file = sf_open(path.c_str(), SFM_WRITE, &info);
    if (file == nullptr) {
        throw std::runtime_error("cannot write audio file '" + path + "': " + sf_strerror(nullptr));
    }
    const auto frames = static_cast<sf_count_t>(audio.frames());
    const sf_count_t put = sf_writef_double(file, audio.samples.data(), frames);
    sf_close(file);
    if (put != frames) throw std::runtime_error("short write to audio file '" + path + "'");
}

Audio fit_length(const Audio& audio, size_t frames) {
    Audio out;
    out.sample_rate = audio.sample_rate;
    out.channels = audio.channels;
    out.samples.assign(frames * audio.channels, 0.0);
    const size_t keep = std::min(frames, audio.frames()) * audio.channels;
    std::copy_n(audio.samples.begin(), keep, out.samples.begin());
    return out;
}

Audio sum_audio(const std::vector<const Audio*>& parts) {
    if (parts.empty()) throw std::runtime_error("sum_audio: nothing to sum");
    Audio out = *parts.front();
    for (size_t k = 1; k < parts.size(); ++k) {
        const Audio& p = *parts[k];
        if (p.sample_rate != out.sample_rate || p.channels != out.channels ||
            p.samples.size() != out.samples.size()) {
            throw std::runtime_error("sum_audio: parts differ in rate, channels or length");
        }
        for (size_t i = 0; i < out.samples.size(); ++i) out.samples[i] += p.samples[i];
    }
    return out;
}

std::vector<double> channel_of(const Audio& audio, size_t channel) {
    std::vector<double> out(audio.frames());
    for (size_t n = 0; n < out.size(); ++n) out[n] = audio.at(n, channel);
    return out;
}

}  // namespace stemsphere::eval
