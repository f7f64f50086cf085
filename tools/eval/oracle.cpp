#include "tools/eval/oracle.h"

#include <cmath>
#include <complex>
#include <filesystem>
#include <stdexcept>

#include "engine/stft.h"

namespace stemsphere::eval {

StemSet oracle_ratio_mask(const StemSet& refs, const std::vector<std::string>& names,
                          size_t fft_size, size_t hop, OracleMask mask) {
    if (fft_size < 2 || fft_size % 2 != 0 || hop == 0 || (fft_size / 2) % hop != 0) {
        throw std::invalid_argument(
            "oracle: fft size must be even and hop must divide fft/2 (got " +
            std::to_string(fft_size) + "/" + std::to_string(hop) + ")");
    }
    const Audio mixture = mixture_of(refs, names);
    const size_t frames = mixture.frames();
    const size_t channels = mixture.channels;
    const size_t k_count = names.size();
    // Frames start fft_size − hop before the signal so that every sample is covered by the full
    // overlap and the analysis/synthesis windows reconstruct it exactly.
    const size_t lead = fft_size - hop;
    const size_t padded = lead + frames + fft_size;
    Stft stft(fft_size, hop);
    const size_t bins = stft.bins();

    StemSet out;
    for (const auto& name : names) {
        out[name] = Audio{mixture.sample_rate, channels, std::vector<double>(frames * channels)};
    }
    std::vector<std::vector<float>> ref_pad(k_count, std::vector<float>(padded));
    std::vector<float> mix_pad(padded);
    std::vector<std::vector<float>> ola(k_count, std::vector<float>(padded + fft_size));
    std::vector<std::vector<std::complex<float>>> ref_spec(k_count,
                                                           std::vector<std::complex<float>>(bins));
    std::vector<std::complex<float>> mix_spec(bins), est_spec(bins);
    for (size_t c = 0; c < channels; ++c) {
        std::fill(mix_pad.begin(), mix_pad.end(), 0.0f);
        for (size_t k = 0; k < k_count; ++k) {
            std::fill(ref_pad[k].begin(), ref_pad[k].end(), 0.0f);
            std::fill(ola[k].begin(), ola[k].end(), 0.0f);
            const Audio& r = refs.at(names[k]);
            for (size_t n = 0; n < frames; ++n) {
                ref_pad[k][lead + n] = static_cast<float>(r.at(n, c));
                mix_pad[lead + n] += static_cast<float>(r.at(n, c));
            }
        }
        for (size_t start = 0; start + fft_size <= padded; start += hop) {
            stft.analyze(mix_pad.data() + start, mix_spec.data());
            for (size_t k = 0; k < k_count; ++k) {
                stft.analyze(ref_pad[k].data() + start, ref_spec[k].data());
            }
            for (size_t k = 0; k < k_count; ++k) {
                for (size_t b = 0; b < bins; ++b) {
                    float total = 0.0f;
                    for (size_t m = 0; m < k_count; ++m) {
                        total += mask == OracleMask::kPower ? std::norm(ref_spec[m][b])
                                                            : std::abs(ref_spec[m][b]);
                    }
                    const float own = mask == OracleMask::kPower ? std::norm(ref_spec[k][b])
                                                                 : std::abs(ref_spec[k][b]);
                    // A bin where every reference is silent is split equally, so the masks still
                    // sum to one.
                    const float m = total > 0.0f ? own / total : 1.0f / static_cast<float>(k_count);
                    est_spec[b] = mix_spec[b] * m;
                }
                stft.synthesize_add(est_spec.data(), ola[k].data() + start);
            }
        }
        for (size_t k = 0; k < k_count; ++k) {
            Audio& o = out[names[k]];
            for (size_t n = 0; n < frames; ++n) o.samples[n * channels + c] = ola[k][lead + n];
        }
    }
    return out;
}

StemSet mixture_share(const StemSet& refs, const std::vector<std::string>& names) {
    Audio share = mixture_of(refs, names);
    const double scale = 1.0 / static_cast<double>(names.size());
    for (double& v : share.samples) v *= scale;
    StemSet out;
    for (const auto& name : names) out[name] = share;
    return out;
}

void write_stems(const std::string& dir, const StemSet& stems) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw std::runtime_error("cannot create directory " + dir + ": " + ec.message());
    for (const auto& [name, audio] : stems) {
        write_audio((std::filesystem::path(dir) / (name + ".wav")).string(), audio);
    }
}

}  // namespace stemsphere::eval
