#include "engine/binaural/hrtf_set.h"

#include <samplerate.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cassert>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numbers>
#include <unordered_set>

#include "engine/binaural/float4.h"
#include "engine/fft.h"

#if __has_include(<mysofa.h>)
#include <mysofa.h>
#define STEMSPHERE_HAVE_MYSOFA 1
#else
#define STEMSPHERE_HAVE_MYSOFA 0
#endif

namespace stemsphere {

namespace {

bool set_error(std::string* error, const std::string& why) {
    if (error != nullptr) *error = why;
    return false;
}

uint32_t next_pow2(uint64_t n) {
    return static_cast<uint32_t>(std::bit_ceil(std::max<uint64_t>(n, 2)));
}

// FFT size of the stored aligned spectra for a runtime filter length: room for the filter plus
// the fractional-delay ringing that would otherwise wrap around.
uint32_t spectrum_size_for(uint32_t filter_taps) {
    return next_pow2(uint64_t{filter_taps} + 64);
}

constexpr double kMinRate = 8000.0;
constexpr double kMaxRate = 768000.0;
constexpr uint32_t kMaxTaps = 1u << 16;
constexpr size_t kMaxMeasurements = 200000;

// Band-limited value of x at t = eighths / 8 (Blackman-windowed sinc, 16 taps each side): onsets
// and peaks are measured between samples, as with 8x oversampling. The kernel is tabulated once
// for the 8 fractional positions.
double bandlimited_value(std::span<const float> x, long eighths) {
    constexpr int kHalf = 16;
    static const auto kernel = [] {
        std::array<std::array<double, 2 * kHalf>, 8> k{};
        for (int frac = 0; frac < 8; ++frac) {
            for (int j = 0; j < 2 * kHalf; ++j) {
                const double u = frac / 8.0 + (kHalf - 1 - j);  // t - k for k = base - 15 + j
                const double sinc = std::fabs(u) < 1e-12
                                        ? 1.0
                                        : std::sin(std::numbers::pi * u) / (std::numbers::pi * u);
                const double phase = std::numbers::pi * (u + kHalf) / kHalf;
                k[size_t(frac)][size_t(j)] =
                    sinc * (0.42 - 0.5 * std::cos(phase) + 0.08 * std::cos(2.0 * phase));
            }
        }
        return k;
    }();
    const long base = eighths >= 0 ? eighths / 8 : -((-eighths + 7) / 8);
    const auto& k = kernel[size_t(eighths - base * 8)];
    double sum = 0.0;
    for (int j = 0; j < 2 * kHalf; ++j) {
        const long i = base - kHalf + 1 + j;
        if (i >= 0 && i < static_cast<long>(x.size())) sum += double(x[size_t(i)]) * k[size_t(j)];
    }
    return sum;
}

// First sample reaching `threshold_db` re the (sample) peak; x.size() for an all-zero response.
size_t first_above(std::span<const float> x, double threshold_db) {
    float peak = 0.0f;
    for (float v : x) peak = std::max(peak, std::fabs(v));
    const double threshold = double(peak) * std::pow(10.0, threshold_db / 20.0);
    size_t i = 0;
    while (i < x.size() && !(double(std::fabs(x[i])) >= threshold && peak > 0.0f)) ++i;
    return i;
}

// Onset: first position (1/8-sample resolution) where |x| reaches -10 dB re its peak. Returns a
// negative value for an all-zero response.
double onset_position(std::span<const float> x) {
    size_t peak_index = 0;
    float peak = 0.0f;
    for (size_t i = 0; i < x.size(); ++i) {
        if (std::fabs(x[i]) > peak) peak = std::fabs(x[i]), peak_index = i;
    }
    if (!(peak > 0.0f)) return -1.0;
    double true_peak = double(peak);
    for (long s = -8; s <= 8; ++s) {
        const long t = static_cast<long>(peak_index) * 8 + s;
        if (t >= 0) true_peak = std::max(true_peak, std::fabs(bandlimited_value(x, t)));
    }
    const double threshold = true_peak * std::pow(10.0, -10.0 / 20.0);
    size_t first = 0;
    while (first < x.size() && double(std::fabs(x[first])) < threshold) ++first;
    // The band-limited curve can cross the threshold up to a couple of samples earlier.
    for (long t = std::max(0l, static_cast<long>(first) - 2) * 8; t < static_cast<long>(first) * 8;
         ++t) {
        if (std::fabs(bandlimited_value(x, t)) >= threshold) return static_cast<double>(t) / 8.0;
    }
    return static_cast<double>(first);
}

// Rounds a rate-relative sample count (defined at 48 kHz) to the actual rate.
uint32_t scaled_samples(double at_48k, double sample_rate, uint32_t minimum) {
    return std::max(minimum, static_cast<uint32_t>(std::lround(at_48k * sample_rate / 48000.0)));
}

// Raised-cosine ramp 0 -> 1 over `length` samples, value at position i.
float ramp_up(size_t i, size_t length) {
    return static_cast<float>(0.5 -
                              0.5 * std::cos(std::numbers::pi * (static_cast<double>(i) + 0.5) /
                                             static_cast<double>(length)));
}

bool validate(const HrtfMeasurements& m, std::string* error) {
    if (!std::isfinite(m.sample_rate) || m.sample_rate < kMinRate || m.sample_rate > kMaxRate) {
        return set_error(error, "invalid HRIR sample rate " + std::to_string(m.sample_rate));
    }
    if (m.taps == 0 || m.taps > kMaxTaps) {
        return set_error(error, "invalid HRIR length " + std::to_string(m.taps));
    }
    if (m.directions.empty() || m.count() > kMaxMeasurements) {
        return set_error(error, "invalid number of measurements " + std::to_string(m.count()));
    }
    if (m.impulse_responses.size() != m.count() * 2 * m.taps) {
        return set_error(error, "HRIR data has " + std::to_string(m.impulse_responses.size()) +
                                    " values, expected measurements x 2 ears x taps = " +
                                    std::to_string(m.count() * 2 * m.taps));
    }
    if (!m.delays.empty() && m.delays.size() != m.count() * 2) {
        return set_error(error, "delay data has the wrong size");
    }
    for (size_t i = 0; i < m.impulse_responses.size(); ++i) {
        if (!std::isfinite(m.impulse_responses[i])) {
            return set_error(
                error, std::string(std::isnan(m.impulse_responses[i]) ? "NaN" : "Inf") +
                           " in HRIR data (measurement " + std::to_string(i / (2 * m.taps)) + ")");
        }
    }
    for (float d : m.delays) {
        if (!std::isfinite(d) || std::fabs(d) > 1e6f) {
            return set_error(error, "NaN or out-of-range value in delay data");
        }
    }
    for (const Vec3& d : m.directions) {
        if (!std::isfinite(d.x) || !std::isfinite(d.y) || !std::isfinite(d.z)) {
            return set_error(error, "NaN in source positions");
        }
        if (!(dot(d, d) > 1e-20)) return set_error(error, "source position at the listener");
    }
    return true;
}

// Band-limited resampling of equally long impulse responses with libsamplerate, in place. The
// result keeps the frequency response: samples are scaled by source_rate / target_rate. Responses
// are interleaved as channels of one conversion so the sinc kernel is evaluated once per output
// sample for the whole group (40x faster than one conversion per response).
bool resample_all(std::vector<std::vector<float>>* irs, double ratio, std::string* error) {
    constexpr size_t kGroup = 128;
    const size_t in_len = irs->front().size();
    const size_t out_len = static_cast<size_t>(std::ceil(static_cast<double>(in_len) * ratio));
    // Zero padding lets the converter flush its filter for the last input samples.
    const size_t padded_len = in_len + 64;
    const size_t out_room = out_len + static_cast<size_t>(std::ceil(64 * ratio)) + 8;
    std::vector<float> in, out;
    const auto scale = static_cast<float>(1.0 / ratio);
    for (size_t first = 0; first < irs->size(); first += kGroup) {
        const size_t channels = std::min(kGroup, irs->size() - first);
        in.assign(padded_len * channels, 0.0f);
        out.assign(out_room * channels, 0.0f);
        for (size_t c = 0; c < channels; ++c) {
            const auto& ir = (*irs)[first + c];
            for (size_t i = 0; i < in_len; ++i) in[i * channels + c] = ir[i];
        }
        SRC_DATA data{};
        data.data_in = in.data();
        data.input_frames = static_cast<long>(padded_len);
        data.data_out = out.data();
        data.output_frames = static_cast<long>(out_room);
        data.src_ratio = ratio;
        const int err = src_simple(&data, SRC_SINC_MEDIUM_QUALITY, static_cast<int>(channels));
        if (err != 0)
            return set_error(error, std::string("resampling failed: ") + src_strerror(err));
        for (size_t c = 0; c < channels; ++c) {
            auto& ir = (*irs)[first + c];
            ir.assign(out_len, 0.0f);
            for (size_t i = 0; i < out_len; ++i) ir[i] = out[i * channels + c] * scale;
        }
    }
    return true;
}

}  // namespace

HrtfSet::Scratch::Scratch(uint32_t max_filter_taps) : max_filter_taps_(max_filter_taps) {
    const uint32_t max_size = spectrum_size_for(max_filter_taps);
    fft_by_log2_.resize(std::bit_width(max_size));
    split_.assign(2 * size_t{(max_size / 2 + 1 + 3) / 4 * 4}, 0.0f);
    for (uint32_t size = 64; size <= max_size; size *= 2) {
        fft_by_log2_[std::bit_width(size) - 1] = std::make_unique<RealFft>(size);
    }
}

HrtfSet::Scratch::~Scratch() = default;
HrtfSet::~HrtfSet() = default;

bool HrtfSet::read_sofa(const std::string& path, HrtfMeasurements* out, std::string* error) {
    std::FILE* file = std::fopen(path.c_str(), "rb");
    if (file == nullptr) {
        return set_error(error, "cannot open HRTF file '" + path + "': " + std::strerror(errno));
    }
    unsigned char signature[8] = {};
    const size_t got = std::fread(signature, 1, sizeof signature, file);
    std::fclose(file);
    static constexpr unsigned char kHdf5Signature[8] = {0x89, 'H',  'D',  'F',
                                                        '\r', '\n', 0x1a, '\n'};
    const bool hdf5 = got == 8 && std::memcmp(signature, kHdf5Signature, 8) == 0;
    if (!hdf5) return set_error(error, "not a SOFA file (no HDF5 signature): '" + path + "'");
#if STEMSPHERE_HAVE_MYSOFA
    int err = 0;
    // mysofa_load only parses; the mysofa_open family also normalises, resamples and builds a
    // neighbourhood (which hangs with zero step sizes) - none of which we want.
    std::unique_ptr<MYSOFA_HRTF, void (*)(MYSOFA_HRTF*)> hrtf(mysofa_load(path.c_str(), &err),
                                                              mysofa_free);
    if (!hrtf || err != MYSOFA_OK) {
        if (err == MYSOFA_INVALID_FORMAT || err == MYSOFA_READ_ERROR) {
            return set_error(error, "corrupt or truncated SOFA file (libmysofa error " +
                                        std::to_string(err) + "): '" + path + "'");
        }
        if (err == MYSOFA_UNSUPPORTED_FORMAT) {
            return set_error(error, "unsupported SOFA/HDF5 layout: '" + path + "'");
        }
        return set_error(error, "cannot read SOFA file (libmysofa error " + std::to_string(err) +
                                    "): '" + path + "'");
    }
    MYSOFA_HRTF* h = hrtf.get();
    const char* conventions = mysofa_getAttribute(h->attributes, const_cast<char*>("Conventions"));
    if (conventions == nullptr || std::strcmp(conventions, "SOFA") != 0) {
        return set_error(error, "not a SOFA file (Conventions attribute missing): '" + path + "'");
    }
    const char* convention =
        mysofa_getAttribute(h->attributes, const_cast<char*>("SOFAConventions"));
    const std::string name = convention != nullptr ? convention : "(none)";
    if (name != "SimpleFreeFieldHRIR") {
        return set_error(error, "convention " + name + ", need SimpleFreeFieldHRIR");
    }
    if (h->R != 2) {
        return set_error(error, "need 2 receivers (ears), file has " + std::to_string(h->R));
    }
    if (h->M == 0 || h->N == 0 || h->M > kMaxMeasurements || h->N > kMaxTaps) {
        return set_error(
            error, "invalid dimensions M=" + std::to_string(h->M) + " N=" + std::to_string(h->N));
    }
    const size_t values = size_t{h->M} * h->R * h->N;
    if (h->DataIR.values == nullptr || h->DataIR.elements != values) {
        return set_error(error, "Data.IR has the wrong size");
    }
    if (h->DataSamplingRate.values == nullptr || h->DataSamplingRate.elements < 1) {
        return set_error(error, "Data.SamplingRate missing");
    }
    if (h->SourcePosition.values == nullptr || h->SourcePosition.elements != size_t{h->M} * 3) {
        return set_error(error, "SourcePosition has the wrong size");
    }
    const unsigned delays = h->DataDelay.values != nullptr ? h->DataDelay.elements : 0;
    if (delays != 0 && delays != 2 && delays != size_t{h->M} * 2) {
        return set_error(error, "Data.Delay has the wrong size");
    }
    // Spherical positions are converted here in double precision: converting the single-precision
    // values (as mysofa_tocartesian does) leaves rings of one elevation only nearly coplanar.
    const char* type = mysofa_getAttribute(h->SourcePosition.attributes, const_cast<char*>("Type"));
    const bool spherical = type != nullptr && std::strcmp(type, "spherical") == 0;

    HrtfMeasurements m;
    m.sample_rate = h->DataSamplingRate.values[0];
    m.taps = h->N;
    m.directions.resize(h->M);
    for (size_t i = 0; i < h->M; ++i) {
        const float* p = h->SourcePosition.values + 3 * i;
        m.directions[i] = spherical ? direction_from_degrees(p[0], p[1]) : Vec3{p[0], p[1], p[2]};
        if (spherical && !std::isfinite(p[2])) m.directions[i].x = std::nan("");
    }
    m.impulse_responses.assign(h->DataIR.values, h->DataIR.values + values);
    if (delays != 0) {
        m.delays.resize(size_t{h->M} * 2);
        for (size_t i = 0; i < m.delays.size(); ++i) {
            m.delays[i] = h->DataDelay.values[delays == 2 ? i % 2 : i];
        }
    }
    if (!validate(m, error)) return false;
    for (Vec3& d : m.directions) d = normalised(d);
    *out = std::move(m);
    return true;
#else
    (void)out;
    return set_error(error, "built without libmysofa: cannot read '" + path + "'");
#endif
}

std::unique_ptr<HrtfSet> HrtfSet::load(const std::string& path, double sample_rate,
                                       std::string* error, const Options& options) {
    try {
        HrtfMeasurements m;
        if (!read_sofa(path, &m, error)) return nullptr;
        return from_measurements(m, sample_rate, error, options);
    } catch (const std::exception& e) {
        set_error(error, std::string("cannot load HRTF: ") + e.what());
        return nullptr;
    }
}

std::unique_ptr<HrtfSet> HrtfSet::from_measurements(const HrtfMeasurements& m, double sample_rate,
                                                    std::string* error, const Options& options) {
    if (!validate(m, error)) return nullptr;
    if (!std::isfinite(sample_rate) || sample_rate < kMinRate || sample_rate > kMaxRate) {
        set_error(error, "invalid host sample rate " + std::to_string(sample_rate));
        return nullptr;
    }
    try {
        // Keep the first of duplicate directions and drop silent measurements (no onset).
        std::vector<size_t> kept;
        std::unordered_set<uint64_t> seen;
        for (size_t i = 0; i < m.count(); ++i) {
            const Vec3 d = normalised(m.directions[i]);
            uint64_t key = 1469598103934665603ull;
            for (double c : {d.x, d.y, d.z}) {
                key = (key ^ static_cast<uint64_t>(std::llround(c * 1e6) + (1ll << 40))) *
                      1099511628211ull;
            }
            bool silent = false;
            for (int ear = 0; ear < 2; ++ear) {
                const float* ir = m.impulse_response(i, ear);
                silent |= std::all_of(ir, ir + m.taps, [](float v) { return v == 0.0f; });
            }
            if (!silent && seen.insert(key).second) kept.push_back(i);
        }
        if (kept.size() < 3) {
            set_error(error, "fewer than 3 usable (non-silent, distinct) measurements");
            return nullptr;
        }

        const double ratio = sample_rate / m.sample_rate;
        std::vector<std::vector<float>> irs(kept.size() * 2);
        for (size_t k = 0; k < kept.size(); ++k) {
            for (int ear = 0; ear < 2; ++ear) {
                const float* raw = m.impulse_response(kept[k], ear);
                irs[k * 2 + size_t(ear)].assign(raw, raw + m.taps);
            }
        }
        if (std::fabs(ratio - 1.0) > 1e-9 && !resample_all(&irs, ratio, error)) return nullptr;
        std::vector<double> onset(kept.size() * 2), total_delay(kept.size() * 2);
        // Everything before `cut` is below -60 dB and dropped. Contralateral responses can rise
        // through -40 dB more than 10 samples before their -10 dB onset, so the cut is not
        // simply "a few samples before the onset".
        std::vector<size_t> cut(kept.size() * 2);
        for (size_t i = 0; i < irs.size(); ++i) {
            const double o = onset_position(irs[i]);
            if (o < 0.0) {  // resampling cannot silence a non-silent response; be safe
                set_error(error, "silent HRIR after resampling");
                return nullptr;
            }
            onset[i] = o;
            const size_t quiet = first_above(irs[i], -60.0);
            cut[i] = std::min<size_t>(quiet > 0 ? quiet - 1 : 0, static_cast<size_t>(o));
            const double stored =
                m.delays.empty() ? 0.0 : double(m.delays[kept[i / 2] * 2 + i % 2]) * ratio;
            total_delay[i] = o + stored;
        }
        const double min_delay = *std::min_element(total_delay.begin(), total_delay.end());
        const double min_onset = *std::min_element(onset.begin(), onset.end());
        double max_relative = 0.0;
        for (double d : total_delay) max_relative = std::max(max_relative, d - min_delay);
        if (max_relative > 0.05 * sample_rate) {
            set_error(error, "interaural delays over 50 ms: not an HRIR set");
            return nullptr;
        }

        // Samples kept before the onset in the aligned responses: room for the earliest cut.
        double longest_lead = 0.0;
        for (size_t i = 0; i < onset.size(); ++i) {
            longest_lead = std::max(longest_lead, onset[i] - static_cast<double>(cut[i]));
        }
        const uint32_t lead = std::max(scaled_samples(8.0, sample_rate, 4),
                                       static_cast<uint32_t>(std::ceil(longest_lead)) + 1);
        const uint32_t fade = scaled_samples(16.0, sample_rate, 8);
        const size_t resampled_len = irs[0].size();
        const auto delay_room = static_cast<uint32_t>(std::ceil(max_relative)) + 2;
        uint32_t filter_taps = options.filter_taps;
        if (filter_taps == 0) {
            filter_taps =
                static_cast<uint32_t>(resampled_len - static_cast<size_t>(std::floor(min_onset))) +
                lead + delay_room;
        }
        if (filter_taps > kMaxTaps || filter_taps < delay_room + lead + 2 * fade + 16) {
            set_error(error, "filter length " + std::to_string(filter_taps) +
                                 " taps is too short for this HRTF's interaural delays (need > " +
                                 std::to_string(delay_room + lead + 2 * fade + 16) + ")");
            return nullptr;
        }
        const uint32_t aligned_len = filter_taps - delay_room;

        auto set = std::unique_ptr<HrtfSet>(new HrtfSet());
        set->sample_rate_ = sample_rate;
        set->filter_taps_ = filter_taps;
        set->spectrum_size_ = spectrum_size_for(filter_taps);
        set->bins_ = set->spectrum_size_ / 2 + 1;
        set->padded_bins_ = (set->bins_ + 3) / 4 * 4;
        set->measured_count_ = kept.size();
        set->directions_.resize(kept.size());
        set->delay_.resize(kept.size() * 2);
        set->aligned_.resize(kept.size() * 2 * set->record_floats());

        // Alignment FFT: long enough that shifting the whole response never wraps around.
        RealFft shift_fft(next_pow2(resampled_len + filter_taps + 64));
        RealFft store_fft(set->spectrum_size_);
        const size_t shift_size = shift_fft.size();
        for (size_t k = 0; k < kept.size(); ++k) {
            set->directions_[k] = normalised(m.directions[kept[k]]);
            for (int ear = 0; ear < 2; ++ear) {
                const size_t idx = k * 2 + size_t(ear);
                const auto& ir = irs[idx];
                set->delay_[idx] = static_cast<float>(total_delay[idx] - min_delay);
                // Drop what precedes the cut (measurement noise), then shift so that the onset
                // sits `lead` samples into the filter.
                const double shift = onset[idx] - lead;
                float* t = shift_fft.time();
                std::fill(t, t + shift_size, 0.0f);
                for (size_t i = cut[idx]; i < ir.size() && i < shift_size; ++i) t[i] = ir[i];
                shift_fft.forward();
                std::complex<float>* s = shift_fft.spectrum();
                const std::complex<double> step = std::polar(
                    1.0, 2.0 * std::numbers::pi * shift / static_cast<double>(shift_size));
                std::complex<double> phase = 1.0;
                for (size_t b = 0; b < shift_fft.bins(); ++b, phase *= step) {
                    s[b] *= std::complex<float>(phase);
                }
                shift_fft.inverse();
                float* st = store_fft.time();
                std::fill(st, st + store_fft.size(), 0.0f);
                const auto norm = static_cast<float>(1.0 / static_cast<double>(shift_size));
                for (size_t i = 0; i < aligned_len; ++i) {
                    const size_t from_end = aligned_len - 1 - i;
                    const float taper = from_end < fade ? ramp_up(from_end, fade) : 1.0f;
                    st[i] = t[i] * norm * taper;
                }
                store_fft.forward();
                // Fold the inverse FFT's 1/N into the stored spectrum.
                const auto store_norm =
                    static_cast<float>(1.0 / static_cast<double>(store_fft.size()));
                float* dst = set->record(k, ear);
                for (size_t b = 0; b < set->bins_; ++b) {
                    dst[b] = store_fft.spectrum()[b].real() * store_norm;
                    dst[set->padded_bins_ + b] = store_fft.spectrum()[b].imag() * store_norm;
                }
            }
        }
        if (!set->finish(error)) return nullptr;
        return set;
    } catch (const std::exception& e) {
        set_error(error, std::string("cannot prepare HRTF: ") + e.what());
        return nullptr;
    }
}

void HrtfSet::add_missing_poles() {
    // Sets without measurements near a pole (MIT KEMAR stops at -40 degrees) would otherwise get
    // a flat cap triangulated into slivers; a pole averaged from the outermost ring keeps the
    // interpolation below that ring smooth and makes the hull enclose the listener.
    constexpr double kPoleZ = 0.9848;  // sin(80 degrees)
    for (const double sign : {1.0, -1.0}) {
        double extreme = -2.0;
        for (size_t i = 0; i < measured_count_; ++i) {
            extreme = std::max(extreme, sign * directions_[i].z);
        }
        if (extreme > kPoleZ) continue;
        const double ring_el = std::asin(std::clamp(extreme, -1.0, 1.0));
        std::vector<size_t> ring;
        for (size_t i = 0; i < measured_count_; ++i) {
            if (std::asin(std::clamp(sign * directions_[i].z, -1.0, 1.0)) >
                ring_el - std::numbers::pi / 180.0) {
                ring.push_back(i);
            }
        }
        directions_.push_back({0.0, 0.0, sign});
        const size_t point = directions_.size() - 1;
        aligned_.resize(aligned_.size() + 2 * record_floats());
        for (int ear = 0; ear < 2; ++ear) {
            double delay = 0.0;
            float* dst = record(point, ear);
            for (size_t i : ring) {
                delay += double(delay_[i * 2 + size_t(ear)]);
                const float* src = record(i, ear);
                for (size_t f = 0; f < record_floats(); ++f) dst[f] += src[f];
            }
            const auto inv = static_cast<float>(1.0 / static_cast<double>(ring.size()));
            for (size_t f = 0; f < record_floats(); ++f) dst[f] *= inv;
            delay_.push_back(static_cast<float>(delay / static_cast<double>(ring.size())));
        }
    }
}

bool HrtfSet::finish(std::string* error) {
    add_missing_poles();
    std::string why;
    triangulation_ = SphereTriangulation::build(directions_, &why);
    if (!triangulation_) return set_error(error, "cannot triangulate HRTF directions: " + why);
    return true;
}

std::unique_ptr<HrtfSet> HrtfSet::subset(std::span<const uint32_t> keep, std::string* error) const {
    try {
        auto set = std::unique_ptr<HrtfSet>(new HrtfSet());
        set->sample_rate_ = sample_rate_;
        set->filter_taps_ = filter_taps_;
        set->spectrum_size_ = spectrum_size_;
        set->bins_ = bins_;
        set->padded_bins_ = padded_bins_;
        for (uint32_t m : keep) {
            if (m >= measured_count_) {
                set_error(error, "subset index out of range");
                return nullptr;
            }
            set->directions_.push_back(directions_[m]);
            for (int ear = 0; ear < 2; ++ear) {
                set->delay_.push_back(delay_[m * 2 + size_t(ear)]);
                const float* src = record(m, ear);
                set->aligned_.insert(set->aligned_.end(), src, src + record_floats());
            }
        }
        set->measured_count_ = keep.size();
        if (!set->finish(error)) return nullptr;
        return set;
    } catch (const std::exception& e) {
        set_error(error, std::string("cannot build HRTF subset: ") + e.what());
        return nullptr;
    }
}

size_t HrtfSet::nearest_measurement(const Vec3& direction) const {
    const Vec3 d = normalised(direction);
    size_t best = 0;
    double best_dot = -2.0;
    for (size_t i = 0; i < measured_count_; ++i) {
        const double c = dot(d, directions_[i]);
        if (c > best_dot) best_dot = c, best = i;
    }
    return best;
}

void HrtfSet::design_filters(const Vec3& direction, HrtfInterpolation mode, uint32_t* triangle_hint,
                             Scratch& scratch, float* left, float* right) const {
    assert(scratch.max_filter_taps() >= filter_taps_);
    std::array<uint32_t, 3> vertex{};
    std::array<float, 3> weight{1.0f, 0.0f, 0.0f};
    if (mode == HrtfInterpolation::kNearest) {
        vertex.fill(static_cast<uint32_t>(nearest_measurement(direction)));
    } else {
        const auto loc = triangulation_->locate(direction, triangle_hint ? *triangle_hint : 0);
        if (triangle_hint != nullptr) *triangle_hint = loc.triangle;
        vertex = loc.vertex;
        weight = loc.weight;
    }
    RealFft& fft = *scratch.fft_by_log2_[std::bit_width(spectrum_size_) - 1];
    assert(fft.size() == spectrum_size_);
    float* split_re = scratch.split_.data();
    float* split_im = split_re + padded_bins_;
    const Float4 w0 = {weight[0], weight[0], weight[0], weight[0]};
    const Float4 w1 = {weight[1], weight[1], weight[1], weight[1]};
    const Float4 w2 = {weight[2], weight[2], weight[2], weight[2]};
    for (int ear = 0; ear < 2; ++ear) {
        double delay = 0.0;
        const float* src[3];
        for (int i = 0; i < 3; ++i) {
            delay += double(weight[i]) * double(delay_[vertex[i] * 2 + size_t(ear)]);
            src[i] = record(vertex[i], ear);
        }
        // Blend the three aligned spectra and re-apply the interpolated delay as the linear
        // phase exp(-j 2 pi k delay / N). Four bins per step; the phase advances by a float
        // rotation and is re-anchored from a double-precision recurrence every 32 bins, so its
        // error stays near float resolution.
        const double angle = -2.0 * std::numbers::pi * delay / static_cast<double>(spectrum_size_);
        const std::complex<double> step(std::cos(angle), std::sin(angle));
        std::complex<double> lane_offset[4] = {1.0, step, step * step, step * step * step};
        const std::complex<double> step4 = lane_offset[3] * step;
        std::complex<double> step32 = step4;
        for (int i = 0; i < 3; ++i) step32 *= step32;  // step4^8
        std::complex<double> anchor = 1.0;             // phase of the first bin of the block
        const auto c4 = static_cast<float>(step4.real()), s4 = static_cast<float>(step4.imag());
        Float4 pr{}, pi{};
        for (size_t b = 0; b < padded_bins_; b += 4) {
            if (b % 32 == 0) {
                for (int l = 0; l < 4; ++l) {
                    const std::complex<double> p = anchor * lane_offset[l];
                    pr[l] = static_cast<float>(p.real());
                    pi[l] = static_cast<float>(p.imag());
                }
                anchor *= step32;
            }
            const Float4 re =
                w0 * load4(src[0] + b) + w1 * load4(src[1] + b) + w2 * load4(src[2] + b);
            const size_t im_at = padded_bins_ + b;
            const Float4 im = w0 * load4(src[0] + im_at) + w1 * load4(src[1] + im_at) +
                              w2 * load4(src[2] + im_at);
            store4(split_re + b, re * pr - im * pi);
            store4(split_im + b, re * pi + im * pr);
            const Float4 next_pr = pr * c4 - pi * s4;
            pi = pr * s4 + pi * c4;
            pr = next_pr;
        }
        std::complex<float>* spec = fft.spectrum();
        for (size_t b = 0; b < bins_; ++b) spec[b] = {split_re[b], split_im[b]};
        fft.inverse();
        std::copy_n(fft.time(), filter_taps_, ear == 0 ? left : right);
    }
}

}  // namespace stemsphere
