#include "tools/eval/metrics.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace stemsphere::eval {

namespace {

void require_same_shape(const Audio& reference, const Audio& estimate) {
    if (reference.channels != estimate.channels || reference.frames() != estimate.frames()) {
        throw std::invalid_argument("metric: estimate and reference differ in channels or length");
    }
}

}  // namespace

double safe_db(double num, double den) {
    if (den == 0.0) return std::numeric_limits<double>::infinity();
    return 10.0 * std::log10(num / den);
}

FrameGrid frame_grid(size_t frames, size_t window, size_t hop) {
    assert(window > 0 && hop > 0);
    FrameGrid grid{window, hop, 1};
    if (window < frames) {
        grid.count = (frames - window + hop) / hop;
    } else {
        grid.window = frames;
    }
    return grid;
}

bool any_signal_silent(const std::vector<const Audio*>& signals, size_t begin, size_t end) {
    for (const Audio* s : signals) {
        bool silent = true;
        for (size_t n = begin; n < end && silent; ++n) {
            double sum = 0.0;
            for (size_t c = 0; c < s->channels; ++c) sum += s->at(n, c);
            silent = sum == 0.0;
        }
        if (silent) return true;
    }
    return false;
}

std::vector<std::vector<double>> framewise_sdr_v4(const std::vector<const Audio*>& references,
                                                  const std::vector<const Audio*>& estimates,
                                                  size_t window, size_t hop) {
    if (references.empty() || references.size() != estimates.size()) {
        throw std::invalid_argument("framewise_sdr_v4: need one estimate per reference");
    }
    const size_t frames = references.front()->frames();
    for (size_t j = 0; j < references.size(); ++j) {
        require_same_shape(*references[j], *estimates[j]);
        if (references[j]->frames() != frames) {
            throw std::invalid_argument("framewise_sdr_v4: references differ in length");
        }
    }
    const FrameGrid grid = frame_grid(frames, window, hop);
    std::vector<std::vector<double>> sdr(references.size(), std::vector<double>(grid.count));
    for (size_t t = 0; t < grid.count; ++t) {
        const size_t begin = grid.begin(t);
        const size_t end = std::min(begin + grid.window, frames);
        const bool silent =
            any_signal_silent(references, begin, end) || any_signal_silent(estimates, begin, end);
        for (size_t j = 0; j < references.size(); ++j) {
            if (silent) {
                sdr[j][t] = std::numeric_limits<double>::quiet_NaN();
                continue;
            }
            const Audio& s = *references[j];
            const Audio& e = *estimates[j];
            double signal = 0.0;
            double error = 0.0;
            for (size_t i = begin * s.channels; i < end * s.channels; ++i) {
                signal += s.samples[i] * s.samples[i];
                const double d = e.samples[i] - s.samples[i];
                error += d * d;
            }
            sdr[j][t] = safe_db(signal, error);
        }
    }
    return sdr;
}

double nan_median(std::vector<double> values) {
    std::erase_if(values, [](double v) { return std::isnan(v); });
    if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
    std::sort(values.begin(), values.end());
    const size_t mid = values.size() / 2;
    if (values.size() % 2 == 1) return values[mid];
    const double lo = values[mid - 1];
    const double hi = values[mid];
    // numpy averages the two middle values; keep ±inf pairs from producing NaN.
    if (lo == hi) return lo;
    return 0.5 * (lo + hi);
}

double usdr(const Audio& reference, const Audio& estimate) {
    require_same_shape(reference, estimate);
    constexpr double kDelta = 1e-7;
    double signal = 0.0;
    double error = 0.0;
    for (size_t i = 0; i < reference.samples.size(); ++i) {
        signal += reference.samples[i] * reference.samples[i];
        const double d = reference.samples[i] - estimate.samples[i];
        error += d * d;
    }
    return 10.0 * std::log10((signal + kDelta) / (error + kDelta));
}

double si_sdr(const Audio& reference, const Audio& estimate) {
    require_same_shape(reference, estimate);
    const size_t channels = reference.channels;
    const size_t frames = reference.frames();
    if (frames == 0) return std::numeric_limits<double>::quiet_NaN();
    std::vector<double> ref_mean(channels, 0.0);
    std::vector<double> est_mean(channels, 0.0);
    for (size_t n = 0; n < frames; ++n) {
        for (size_t c = 0; c < channels; ++c) {
            ref_mean[c] += reference.at(n, c);
            est_mean[c] += estimate.at(n, c);
        }
    }
    for (size_t c = 0; c < channels; ++c) {
        ref_mean[c] /= static_cast<double>(frames);
        est_mean[c] /= static_cast<double>(frames);
    }
    double ref_energy = 0.0;
    double cross = 0.0;
    for (size_t n = 0; n < frames; ++n) {
        for (size_t c = 0; c < channels; ++c) {
            const double s = reference.at(n, c) - ref_mean[c];
            const double e = estimate.at(n, c) - est_mean[c];
            ref_energy += s * s;
            cross += s * e;
        }
    }
    if (ref_energy == 0.0) return std::numeric_limits<double>::quiet_NaN();
    const double alpha = cross / ref_energy;
    double target = 0.0;
    double distortion = 0.0;
    for (size_t n = 0; n < frames; ++n) {
        for (size_t c = 0; c < channels; ++c) {
            const double s = alpha * (reference.at(n, c) - ref_mean[c]);
            const double e = estimate.at(n, c) - est_mean[c];
            target += s * s;
            distortion += (s - e) * (s - e);
        }
    }
    return safe_db(target, distortion);
}

}  // namespace stemsphere::eval
