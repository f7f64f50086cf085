#include "engine/binaural/binaural_renderer.h"

#include "engine/binaural/float4.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <numbers>
#include <stdexcept>

namespace stemsphere {

namespace {

constexpr double kDegToRad = std::numbers::pi / 180.0;
constexpr uint32_t kVectorWidth = 16;  // floats; stride multiple keeps loops free of tails

// acc{0,1} += x * h{0,1} (complex, split re/im) for both ears in one pass over x.
void multiply_accumulate(const float* xr, const float* xi, const float* h0r, const float* h0i,
                         const float* h1r, const float* h1i, float* a0r, float* a0i, float* a1r,
                         float* a1i, uint32_t n) {
    assert(n % kVectorWidth == 0);
    for (uint32_t k = 0; k < n; k += 4) {
        const Float4 r = load4(xr + k), i = load4(xi + k);
        const Float4 p0r = load4(h0r + k), p0i = load4(h0i + k);
        const Float4 p1r = load4(h1r + k), p1i = load4(h1i + k);
        store4(a0r + k, load4(a0r + k) + r * p0r - i * p0i);
        store4(a0i + k, load4(a0i + k) + r * p0i + i * p0r);
        store4(a1r + k, load4(a1r + k) + r * p1r - i * p1i);
        store4(a1i + k, load4(a1i + k) + r * p1i + i * p1r);
    }
}

// out = a - b over n floats (n a multiple of kVectorWidth).
void difference(const float* a, const float* b, float* out, size_t n) {
    assert(n % kVectorWidth == 0);
    for (size_t k = 0; k < n; k += 4) store4(out + k, load4(a + k) - load4(b + k));
}

// Air absorption as a one-pole low-pass whose cutoff falls as 1/r beyond 1 m (22 kHz at 1 m,
// 4.4 kHz at 5 m): a stylised but monotonic "further = duller" cue. 0 = no filtering.
float air_coefficient(float distance_m, double sample_rate) {
    if (!(distance_m > 1.0f)) return 0.0f;
    const double cutoff = std::max(1500.0, 22000.0 / double(distance_m));
    if (cutoff >= 0.45 * sample_rate) return 0.0f;
    return static_cast<float>(std::exp(-2.0 * std::numbers::pi * cutoff / sample_rate));
}

}  // namespace

BinauralRenderer::BinauralRenderer(const Config& config)
    : config_(config),
      block_(config.block_frames),
      partitions_(0),
      bins_(config.block_frames + 1),
      stride_(0),
      update_interval_frames_(0),
      settle_frames_(0),
      update_cos_(1.0),
      fft_(2 * size_t{std::max<uint32_t>(config.block_frames, 1)}),
      scratch_(config.max_filter_taps) {
    if (block_ < 1 || block_ > 16384) throw std::invalid_argument("block_frames out of range");
    if (config_.max_filter_taps < 1 || config_.max_filter_taps > 65536) {
        throw std::invalid_argument("max_filter_taps out of range");
    }
    if (!(config_.sample_rate >= 8000.0 && config_.sample_rate <= 768000.0)) {
        throw std::invalid_argument("sample_rate out of range");
    }
    partitions_ = (config_.max_filter_taps + block_ - 1) / block_;
    stride_ = (bins_ + kVectorWidth - 1) / kVectorWidth * kVectorWidth;
    update_interval_frames_ = static_cast<uint32_t>(
        std::lround(std::max(0.0, config_.min_update_interval_s) * config_.sample_rate));
    settle_frames_ = static_cast<uint32_t>(
        std::lround(std::clamp(config_.settle_s, 0.0, 10.0) * config_.sample_rate));
    update_cos_ = std::cos(std::clamp(config_.min_update_angle_deg, 0.0, 90.0) * kDegToRad);

    const size_t spectrum = 2 * size_t{stride_};  // re + im
    const size_t per_source = 2 * size_t{block_} + partitions_ * spectrum +
                              2 * (2 * partitions_ * spectrum);  // history, FDL, filters, deltas
    const size_t total = kVirtualSourceCount * per_source + 2 * (2 * spectrum) + spectrum +
                         2 * size_t{partitions_} * block_ + 2 * size_t{block_} +
                         kVirtualSourceCount * size_t{block_} + 2 * size_t{block_};
    storage_.assign(total, 0.0f);
    float* p = storage_.data();
    auto take = [&p](size_t n) {
        float* r = p;
        p += n;
        return r;
    };
    for (auto& s : sources_) {
        s.history = take(2 * size_t{block_});
        s.spectra = take(partitions_ * spectrum);
        s.filters = take(2 * partitions_ * spectrum);
        s.deltas = take(2 * partitions_ * spectrum);
    }
    accumulators_ = take(2 * spectrum);
    differences_ = take(2 * spectrum);
    new_spectrum_ = take(spectrum);
    filter_time_ = take(2 * size_t{partitions_} * block_);
    fade_out_ = take(block_);
    zeros_ = take(block_);
    fifo_in_ = take(kVirtualSourceCount * size_t{block_});
    fifo_out_ = take(2 * size_t{block_});
    assert(p == storage_.data() + total);
    for (uint32_t i = 0; i < block_; ++i) {
        const double w = 0.5 - 0.5 * std::cos(std::numbers::pi * (i + 0.5) / block_);
        fade_out_[i] = static_cast<float>(1.0 - w);
    }
    for (int stem = 0; stem < kStemCount; ++stem) set_source(stem, 0.0f, 0.0f, 1.0f, 60.0f);
    for (auto& s : sources_) s.gain = s.target_gain;
}

BinauralRenderer::~BinauralRenderer() = default;

bool BinauralRenderer::set_hrtf(const HrtfSet* set) {
    if (set != nullptr) {
        if (std::fabs(set->sample_rate() - config_.sample_rate) > 1e-6 * config_.sample_rate ||
            set->filter_taps() > config_.max_filter_taps) {
            return false;
        }
    }
    hrtf_ = set;
    hrtf_changed_ = true;
    return true;
}

void BinauralRenderer::set_source(int stem, float azimuth_deg, float elevation_deg,
                                  float distance_m, float width_deg) {
    if (stem < 0 || stem >= kStemCount) return;
    if (!std::isfinite(azimuth_deg) || !std::isfinite(elevation_deg) ||
        !std::isfinite(distance_m) || !std::isfinite(width_deg)) {
        return;
    }
    const double el = std::clamp(double(elevation_deg), -90.0, 90.0);
    const double half_width = std::clamp(double(width_deg), 0.0, 360.0) / 2.0;
    const float distance = std::clamp(distance_m, 0.0f, 1.0e4f);
    const float gain =
        config_.reference_distance_m / std::max(distance, std::max(config_.near_limit_m, 1e-3f));
    for (int channel = 0; channel < 2; ++channel) {
        VirtualSource& s = sources_[size_t(2 * stem + channel)];
        const double az = double(azimuth_deg) + (channel == 0 ? half_width : -half_width);
        const Vec3 world = direction_from_degrees(az, el);
        s.moved |= world.x != s.world.x || world.y != s.world.y || world.z != s.world.z;
        s.world = world;
        s.target_gain = gain;
        s.air_coefficient =
            config_.air_absorption ? air_coefficient(distance, config_.sample_rate) : 0.0f;
    }
}

void BinauralRenderer::set_head(float yaw_deg, float pitch_deg, float roll_deg) {
    if (!std::isfinite(yaw_deg) || !std::isfinite(pitch_deg) || !std::isfinite(roll_deg)) return;
    const double yaw = double(yaw_deg) * kDegToRad;
    const double pitch = double(pitch_deg) * kDegToRad;
    const double roll = double(roll_deg) * kDegToRad;
    const double cy = std::cos(yaw), sy = std::sin(yaw);
    // Nose up is a negative rotation about +y (the left axis) in a right-handed frame.
    const double cp = std::cos(-pitch), sp = std::sin(-pitch);
    const double cr = std::cos(roll), sr = std::sin(roll);
    // R = Rz(yaw) * Ry(-pitch) * Rx(roll), stored row-major; its columns are the head's axes.
    const std::array<double, 9> r{cy * cp,
                                  cy * sp * sr - sy * cr,
                                  cy * sp * cr + sy * sr,
                                  sy * cp,
                                  sy * sp * sr + cy * cr,
                                  sy * sp * cr - cy * sr,
                                  -sp,
                                  cp * sr,
                                  cp * cr};
    if (r != head_) {
        for (auto& s : sources_) s.moved = true;
    }
    head_ = r;
}

Vec3 BinauralRenderer::head_relative(const Vec3& w) const {
    const auto& r = head_;
    // R^T * w: components of the world direction along the head's axes.
    return {r[0] * w.x + r[3] * w.y + r[6] * w.z, r[1] * w.x + r[4] * w.y + r[7] * w.z,
            r[2] * w.x + r[5] * w.y + r[8] * w.z};
}

void BinauralRenderer::reset() {
    for (auto& s : sources_) {
        std::fill_n(s.history, 2 * size_t{block_}, 0.0f);
        std::fill_n(s.spectra, partitions_ * 2 * size_t{stride_}, 0.0f);
        s.air_state = 0.0f;
        s.gain = s.target_gain;
    }
    std::fill_n(fifo_in_, kVirtualSourceCount * size_t{block_}, 0.0f);
    std::fill_n(fifo_out_, 2 * size_t{block_}, 0.0f);
    fifo_fill_ = 0;
}

void BinauralRenderer::design_source(VirtualSource& s, const Vec3& head_direction) {
    const size_t spectrum = 2 * size_t{stride_};
    const uint32_t taps = hrtf_ != nullptr ? hrtf_->filter_taps() : 0;
    const uint32_t used = (taps + block_ - 1) / block_;
    float* left = filter_time_;
    float* right = filter_time_ + size_t{partitions_} * block_;
    if (hrtf_ != nullptr) {
        hrtf_->design_filters(head_direction, config_.interpolation, &s.triangle_hint, scratch_,
                              left, right);
    }
    // Partition spectra of the new filters, scaled by the inverse FFT's 1/(2B); deltas keep
    // old - new for this block's cross-fade. Partitions beyond both filters stay zero.
    const auto scale = static_cast<float>(1.0 / (2.0 * block_));
    const uint32_t touched = std::max(used, s.partitions);
    for (int ear = 0; ear < 2; ++ear) {
        const float* filter = ear == 0 ? left : right;
        for (uint32_t p = 0; p < touched; ++p) {
            float* h = s.filters + (size_t(ear) * partitions_ + p) * spectrum;
            float* d = s.deltas + (size_t(ear) * partitions_ + p) * spectrum;
            float* fresh = new_spectrum_;
            if (p < used) {
                float* t = fft_.time();
                const uint32_t begin = p * block_;
                const uint32_t count = std::min(block_, taps - begin);
                for (uint32_t i = 0; i < count; ++i) t[i] = filter[begin + i] * scale;
                std::fill(t + count, t + 2 * size_t{block_}, 0.0f);
                fft_.forward();
                const float* x = reinterpret_cast<const float*>(fft_.spectrum());
                for (uint32_t k = 0; k < bins_; ++k) {
                    fresh[k] = x[2 * k];
                    fresh[stride_ + k] = x[2 * k + 1];
                }
            } else {
                std::fill_n(fresh, spectrum, 0.0f);
            }
            difference(h, fresh, d, spectrum);
            std::memcpy(h, fresh, spectrum * sizeof(float));
        }
    }
    s.partitions = used;
    s.current = head_direction;
    s.fading = true;
    s.frames_since_update = 0;
    ++filter_updates_;
    active_partitions_ = used;
}

void BinauralRenderer::update_filters() {
    const uint32_t previous_partitions = active_partitions_;
    for (auto& s : sources_) {
        s.fading = false;
        s.frames_since_update = std::min(s.frames_since_update + block_, 1u << 30);
        // A rate-limited move stays pending in `moved` until the interval has passed.
        if (!hrtf_changed_ && !(s.moved && s.frames_since_update >= update_interval_frames_)) {
            continue;
        }
        const Vec3 target = head_relative(s.world);
        if (hrtf_changed_) {
            s.moved = false;
            design_source(s, target);
            continue;
        }
        const bool changed =
            target.x != s.current.x || target.y != s.current.y || target.z != s.current.z;
        const bool far_enough = dot(target, s.current) <= update_cos_;
        if (changed && (far_enough || s.frames_since_update >= settle_frames_)) {
            s.moved = false;
            design_source(s, target);
        } else if (!changed) {
            s.moved = false;
        }
    }
    hrtf_changed_ = false;
    fading_partitions_ = std::max(previous_partitions, active_partitions_);
}

void BinauralRenderer::filter_input(int v, const float* in) {
    VirtualSource& s = sources_[size_t(v)];
    float* h = s.history;
    std::memcpy(h, h + block_, block_ * sizeof(float));
    float* cur = h + block_;
    const float g0 = s.gain;
    const float step = (s.target_gain - g0) / static_cast<float>(block_);
    const float a = s.air_coefficient;
    float energy = 0.0f;
    if (a == 0.0f) {
        for (uint32_t i = 0; i < block_; ++i) {
            cur[i] = in[i] * (g0 + step * static_cast<float>(i + 1));
            energy += cur[i] * cur[i];
        }
        s.air_state = cur[block_ - 1];
    } else {
        float y = s.air_state;
        for (uint32_t i = 0; i < block_; ++i) {
            y += (1.0f - a) * (in[i] * (g0 + step * static_cast<float>(i + 1)) - y);
            cur[i] = y;
            energy += y * y;
        }
        s.air_state = std::fabs(y) < 1e-20f ? 0.0f : y;
    }
    s.gain = s.target_gain;
    // NaN/Inf input must not poison the convolution history for longer than this block.
    if (!std::isfinite(energy)) {
        std::fill_n(cur, block_, 0.0f);
        s.air_state = 0.0f;
    }
    std::memcpy(fft_.time(), h, 2 * size_t{block_} * sizeof(float));
    fft_.forward();
    float* x = s.spectra + size_t{fdl_head_} * 2 * stride_;
    const std::complex<float>* spec = fft_.spectrum();
    for (uint32_t k = 0; k < bins_; ++k) x[k] = spec[k].real(), x[stride_ + k] = spec[k].imag();
}

void BinauralRenderer::process_block(const float* const* in, float* out_l, float* out_r) {
    update_filters();
    const size_t spectrum = 2 * size_t{stride_};
    for (int v = 0; v < kVirtualSourceCount; ++v) {
        const float* channel = in != nullptr && in[v] != nullptr ? in[v] : zeros_;
        filter_input(v, channel);
    }
    std::fill_n(accumulators_, 2 * spectrum, 0.0f);
    bool any_fading = false;
    for (auto& s : sources_) any_fading |= s.fading;
    if (any_fading) std::fill_n(differences_, 2 * spectrum, 0.0f);
    const uint32_t used = any_fading ? fading_partitions_ : active_partitions_;
    for (auto& s : sources_) {
        for (uint32_t p = 0; p < used; ++p) {
            const uint32_t slot = (fdl_head_ + partitions_ - p) % partitions_;
            const float* x = s.spectra + size_t{slot} * spectrum;
            const float* h0 = s.filters + size_t{p} * spectrum;
            const float* h1 = s.filters + (size_t{partitions_} + p) * spectrum;
            multiply_accumulate(x, x + stride_, h0, h0 + stride_, h1, h1 + stride_, accumulators_,
                                accumulators_ + stride_, accumulators_ + spectrum,
                                accumulators_ + spectrum + stride_, stride_);
            if (s.fading) {
                const float* d0 = s.deltas + size_t{p} * spectrum;
                const float* d1 = s.deltas + (size_t{partitions_} + p) * spectrum;
                multiply_accumulate(x, x + stride_, d0, d0 + stride_, d1, d1 + stride_,
                                    differences_, differences_ + stride_, differences_ + spectrum,
                                    differences_ + spectrum + stride_, stride_);
            }
        }
    }
    fdl_head_ = (fdl_head_ + 1) % partitions_;
    for (int ear = 0; ear < 2; ++ear) {
        float* out = ear == 0 ? out_l : out_r;
        // Overlap-save: the last B samples of the 2B-point circular convolution are exact.
        const float* a = accumulators_ + size_t(ear) * spectrum;
        std::complex<float>* spec = fft_.spectrum();
        for (uint32_t k = 0; k < bins_; ++k) spec[k] = {a[k], a[stride_ + k]};
        fft_.inverse();
        std::memcpy(out, fft_.time() + block_, block_ * sizeof(float));
        if (any_fading) {
            // (1 - w) * old + w * new == new + (1 - w) * (old - new)
            const float* d = differences_ + size_t(ear) * spectrum;
            for (uint32_t k = 0; k < bins_; ++k) spec[k] = {d[k], d[stride_ + k]};
            fft_.inverse();
            const float* t = fft_.time() + block_;
            for (uint32_t i = 0; i < block_; ++i) out[i] += fade_out_[i] * t[i];
        }
    }
}

void BinauralRenderer::process(const float* const* stems, float* out_l, float* out_r, uint32_t n) {
    if (!config_.any_block_size) {
        assert(n == block_ && "process() needs exactly block_frames frames without the FIFO");
        if (n != block_) {  // release builds: a wrong call yields silence, never garbage
            std::fill_n(out_l, n, 0.0f);
            std::fill_n(out_r, n, 0.0f);
            return;
        }
        process_block(stems, out_l, out_r);
        return;
    }
    const float* fifo_channels[kVirtualSourceCount];
    for (int v = 0; v < kVirtualSourceCount; ++v) {
        fifo_channels[v] = fifo_in_ + size_t(v) * block_;
    }
    uint32_t done = 0;
    while (done < n) {
        const uint32_t count = std::min(n - done, block_ - fifo_fill_);
        for (int v = 0; v < kVirtualSourceCount; ++v) {
            float* dst = fifo_in_ + size_t(v) * block_ + fifo_fill_;
            if (stems != nullptr && stems[v] != nullptr) {
                std::memcpy(dst, stems[v] + done, count * sizeof(float));
            } else {
                std::fill_n(dst, count, 0.0f);
            }
        }
        std::memcpy(out_l + done, fifo_out_ + fifo_fill_, count * sizeof(float));
        std::memcpy(out_r + done, fifo_out_ + block_ + fifo_fill_, count * sizeof(float));
        fifo_fill_ += count;
        done += count;
        if (fifo_fill_ == block_) {
            process_block(fifo_channels, fifo_out_, fifo_out_ + block_);
            fifo_fill_ = 0;
        }
    }
}

}  // namespace stemsphere
