#include "engine/processor.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/denormals.h"
#include "engine/dsp_mask_estimator.h"
#include "engine/neural/blended_mask_estimator.h"
#include "engine/neural/model_ensemble.h"

namespace stemsphere {

namespace {
// NaN/Inf are replaced by silence and absurd levels clipped so that neither can poison the
// filter and median state: the output is finite again as soon as the input is.
inline float sanitize(float x) {
    constexpr float kLimit = 1000.0f;  // +60 dBFS
    if (!std::isfinite(x)) return 0.0f;
    return std::clamp(x, -kLimit, kLimit);
}

float db_to_gain(float db) {
    return db <= -90.0f ? 0.0f : std::pow(10.0f, db / 20.0f);
}
}  // namespace

namespace {
BinauralRendererConfig renderer_config(double sample_rate, size_t hop) {
    BinauralRendererConfig c;
    c.sample_rate = sample_rate;
    c.block_frames = static_cast<uint32_t>(hop);
    c.max_filter_taps = Processor::hrtf_filter_taps(sample_rate);
    return c;
}
}  // namespace

uint32_t Processor::hrtf_filter_taps(double sample_rate) {
    // 512 taps (≥ 10 ms, the whole useful KEMAR response) per 48 kHz of rate.
    return 512u * static_cast<uint32_t>(std::max(1.0, std::ceil(sample_rate / 48000.0)));
}

Processor::Processor(double sample_rate, std::unique_ptr<MaskEstimator> estimator,
                     BlendedMaskEstimator* fallback)
    : engine_(stft_format_for_rate(sample_rate), std::move(estimator)),
      fallback_(fallback),
      renderer_(renderer_config(sample_rate, engine_.hop())),
      hop_(engine_.hop()) {
    in_hop_[0].assign(hop_, 0.0f);
    in_hop_[1].assign(hop_, 0.0f);
    engine_out_.assign(kHopChannels * hop_, 0.0f);
    out_hop_.assign(kOutputChannels * hop_, 0.0f);
    gained_.assign(2 * kStemCount * hop_, 0.0f);
    binaural_.assign(2 * hop_, 0.0f);
    gain_state_.fill(1.0f);
    smoothing_coeff_ = static_cast<float>(1.0 - std::exp(-1.0 / (0.010 * sample_rate)));
}

std::unique_ptr<Processor> Processor::with_dsp_backend(double sample_rate) {
    return std::make_unique<Processor>(
        sample_rate, std::make_unique<DspMaskEstimator>(stft_format_for_rate(sample_rate)));
}

void Processor::set_dsp_fallback(bool on) {
    if (fallback_ == nullptr || on == fallback_on_) return;
    fallback_on_ = on;
    fallback_->set_secondary_weight_target(on ? 1.0f : 0.0f, kFallbackFadeHops);
}

bool Processor::dsp_fallback_audible() const {
    return fallback_ != nullptr && fallback_->secondary_weight() > 0.0f;
}

bool Processor::set_hrtf(const HrtfSet* set) {
    return renderer_.set_hrtf(set);
}

std::vector<std::string> quality_mode_model_files(QualityMode mode) {
    const QualityModeInfo& info = quality_mode_info(mode);
    std::vector<std::string> files;
    if (info.model_file.empty()) return files;
    files.emplace_back(info.model_file);
    for (size_t i = 0; i < info.also_averages_count; ++i) {
        files.emplace_back(quality_mode_info(info.also_averages[i]).model_file);
    }
    return files;
}

StemChoice quality_mode_stem_choice(QualityMode mode) {
    static_assert(kStemCount == 4, "the mode table lists one network weight per stem");
    const QualityModeInfo& info = quality_mode_info(mode);
    StemChoice c;
    c.network_weight = info.stem_network_weight;
    c.vocal_agreement = info.vocal_agreement;
    c.vocal_expand_below = info.vocal_expand_below;
    return c;
}

namespace {
// A model file fits the mode that owns it when it declares that mode's variant and keeps to its
// look-ahead rule (the parser caps every look-ahead, so "unbounded" stays finite).
bool model_fits(const NeuralModel& model, const QualityModeInfo& owner, const StftFormat& format) {
    const double lookahead_s =
        static_cast<double>(model.lookahead * format.hop) / format.sample_rate;
    return model.variant == owner.variant && lookahead_s <= owner.max_lookahead_s;
}
}  // namespace

std::optional<size_t> Processor::mode_latency(double sample_rate, QualityMode mode,
                                              const std::string& models_dir, std::string* error) {
    const StftFormat format = stft_format_for_rate(sample_rate);
    size_t lookahead = 0;  // frames (hops) of the furthest-looking network the mode runs
    for (const std::string& file : quality_mode_model_files(mode)) {
        std::string why;
        auto model = NeuralModel::load(models_dir + "/" + file, &why);
        if (!model) {
            *error = std::string(quality_mode_info(mode).label) + ": " + why;
            return std::nullopt;
        }
        lookahead = std::max(lookahead, model->lookahead);
    }
    // SeparationEngine::hop_latency() + one hop, as latency().
    return format.fft_size - format.hop + lookahead * format.hop + format.hop;
}

std::unique_ptr<Processor> Processor::create(double sample_rate, QualityMode mode,
                                             const std::string& models_dir, std::string* error) {
    const QualityModeInfo& info = quality_mode_info(mode);
    if (info.model_file.empty()) return with_dsp_backend(sample_rate);
    // Its own network first, then those of the modes it averages in.
    std::vector<const QualityModeInfo*> owners = {&info};
    for (size_t i = 0; i < info.also_averages_count; ++i) {
        owners.push_back(&quality_mode_info(info.also_averages[i]));
    }
    const StftFormat format = stft_format_for_rate(sample_rate);
    std::vector<std::shared_ptr<const NeuralModel>> models;
    for (const QualityModeInfo* owner : owners) {
        const std::string path = models_dir + "/" + std::string(owner->model_file);
        std::string why;
        auto model = NeuralModel::load(path, &why);
        if (!model) {
            *error = std::string(info.label) + ": " + why;
            return nullptr;
        }
        if (!model_fits(*model, *owner, format)) {
            *error = std::string(info.label) + ": " + path + " is not a " +
                     std::string(owner->label) + " model (variant or look-ahead)";
            return nullptr;
        }
        models.push_back(std::move(model));
    }
    try {
        auto estimator =
            make_mode_estimator(std::move(models), format, quality_mode_stem_choice(mode));
        if (!info.metered) return std::make_unique<Processor>(sample_rate, std::move(estimator));
        // Weight 0 keeps the mode's masks bit for bit until a fallback is asked for.
        auto blend = std::make_unique<BlendedMaskEstimator>(
            std::move(estimator), std::make_unique<DspMaskEstimator>(format), format.bins(), 0.0f);
        BlendedMaskEstimator* fallback = blend.get();
        return std::make_unique<Processor>(sample_rate, std::move(blend), fallback);
    } catch (const std::exception& e) {
        *error = std::string(info.label) + ": " + e.what();
        return nullptr;
    }
}

void Processor::reset() {
    engine_.reset();
    renderer_.reset();
    fill_ = 0;
    std::fill(out_hop_.begin(), out_hop_.end(), 0.0f);
    for (size_t s = 0; s < kStemCount; ++s) {
        const StemControls& c = controls_.stems[s];
        gain_state_[s] = c.mute ? 0.0f : db_to_gain(c.gain_db);
    }
    enable_state_ = controls_.enabled ? 1.0f : 0.0f;
    binaural_state_ = controls_.binaural && hrtf() != nullptr ? 1.0f : 0.0f;
}

void Processor::process(const float* in_l, const float* in_r, float* const* out, size_t n) {
    ScopedFlushDenormals flush;
    size_t done = 0;
    while (done < n) {
        const size_t m = std::min(n - done, hop_ - fill_);
        // Read the input chunk before writing outputs: hosts may run in place.
        for (size_t i = 0; i < m; ++i) {
            in_hop_[0][fill_ + i] = sanitize(in_l[done + i]);
            in_hop_[1][fill_ + i] = sanitize(in_r[done + i]);
        }
        for (size_t ch = 0; ch < kOutputChannels; ++ch) {
            if (out[ch] == nullptr) continue;
            const float* src = out_hop_.data() + ch * hop_ + fill_;
            std::copy(src, src + m, out[ch] + done);
        }
        fill_ += m;
        done += m;
        if (fill_ == hop_) {
            run_hop();
            fill_ = 0;
        }
    }
}

void Processor::run_hop() {
    float* eng[kHopChannels];
    for (size_t ch = 0; ch < kHopChannels; ++ch) eng[ch] = engine_out_.data() + ch * hop_;
    engine_.process_hop(in_hop_[0].data(), in_hop_[1].data(), eng);

    bool any_solo = false;
    for (const auto& s : controls_.stems) any_solo = any_solo || s.solo;
    std::array<float, kStemCount> target{};
    for (size_t s = 0; s < kStemCount; ++s) {
        const StemControls& c = controls_.stems[s];
        const bool audible = !c.mute && (!any_solo || c.solo);
        target[s] = audible ? db_to_gain(c.gain_db) : 0.0f;
    }
    const float enable_target = controls_.enabled ? 1.0f : 0.0f;
    const float k = smoothing_coeff_;

    // Stems after gain/mute/solo (per-sample smoothed), and their plain sum.
    float* main_l = out_hop_.data();
    float* main_r = out_hop_.data() + hop_;
    for (size_t i = 0; i < hop_; ++i) {
        float mix_l = 0.0f;
        float mix_r = 0.0f;
        for (size_t s = 0; s < kStemCount; ++s) {
            gain_state_[s] += k * (target[s] - gain_state_[s]);
            const float l = gain_state_[s] * eng[kDryChannels + 2 * s][i];
            const float r = gain_state_[s] * eng[kDryChannels + 2 * s + 1][i];
            gained_[(2 * s) * hop_ + i] = l;
            gained_[(2 * s + 1) * hop_ + i] = r;
            mix_l += l;
            mix_r += r;
        }
        main_l[i] = mix_l;
        main_r[i] = mix_r;
    }

    // Binaural main mix, cross-faded with the plain sum when switched (or when no set is loaded).
    const float binaural_target = controls_.binaural && hrtf() != nullptr ? 1.0f : 0.0f;
    if (binaural_target > 0.0f || binaural_state_ > 0.0f) {
        for (size_t s = 0; s < kStemCount; ++s) {
            const StemPlacement& p = controls_.placement[s];
            renderer_.set_source(static_cast<int>(s), p.azimuth_deg, p.elevation_deg, p.distance_m,
                                 p.width_deg);
        }
        renderer_.set_head(controls_.head_yaw_deg, controls_.head_pitch_deg,
                           controls_.head_roll_deg);
        const float* stems[2 * kStemCount];
        for (size_t c = 0; c < 2 * kStemCount; ++c) stems[c] = gained_.data() + c * hop_;
        float* bl = binaural_.data();
        float* br = binaural_.data() + hop_;
        renderer_.process(stems, bl, br, static_cast<uint32_t>(hop_));
        for (size_t i = 0; i < hop_; ++i) {
            binaural_state_ += k * (binaural_target - binaural_state_);
            main_l[i] += binaural_state_ * (bl[i] - main_l[i]);
            main_r[i] += binaural_state_ * (br[i] - main_r[i]);
        }
    }

    // Bypass cross-fade: the dry (delayed input) signal replaces the mix; stem outputs stay at
    // unity for routing and fade out when bypassed.
    for (size_t i = 0; i < hop_; ++i) {
        enable_state_ += k * (enable_target - enable_state_);
        const float dry = 1.0f - enable_state_;
        main_l[i] = enable_state_ * main_l[i] + dry * eng[0][i];
        main_r[i] = enable_state_ * main_r[i] + dry * eng[1][i];
        for (size_t s = 0; s < kStemCount; ++s) {
            out_hop_[(2 + 2 * s) * hop_ + i] = enable_state_ * eng[kDryChannels + 2 * s][i];
            out_hop_[(3 + 2 * s) * hop_ + i] = enable_state_ * eng[kDryChannels + 2 * s + 1][i];
        }
    }
}

}  // namespace stemsphere
