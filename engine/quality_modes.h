#pragma once
// What each quality mode is, in one table: its command-line name, the label hosts show, its
// latency rule, the networks it runs, whether it is metered, and its status. The engine (which
// models to load and check), the plugin (labels, which modes meter), stemsphere-render (its
// --quality words) and the metering client read this table; the TTL's `quality` scale points
// repeat the labels and values, and tests/plugin checks them against it through the lilv host.
//
// Header only, no DSP: the client may include it without linking the engine.
#include <array>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>

namespace stemsphere {

// The values are the plugin's `quality` control values (saved in sessions): never renumber.
enum class QualityMode : uint32_t { kLiveDsp = 0, kLiveNeural = 1, kStudio = 2, kRender = 3 };

// The network kinds a model file declares (docs/models.md). Stored in the file: never renumber.
// kTest: the tiny fixture networks of the engine tests, never a mode's.
enum class NeuralVariant : uint32_t { kLive = 0, kStudio = 1, kTest = 2, kRender = 3 };

enum class ModeStatus : uint32_t {
    kDefault,  // the mode a new instance starts in
    kShipped,  // weights ship in the bundle; for real-time use
    kOffline,  // weights ship in the bundle; for batch renders and offline bounces
};

struct QualityModeInfo {
    QualityMode mode;
    std::string_view name;   // stemsphere-render --quality NAME (any case)
    std::string_view label;  // the `quality` scale point label
    // Its own network (inside the bundle's models/ folder) and the variant that file must
    // declare; empty for the DSP back end.
    std::string_view model_file;
    NeuralVariant variant;
    // Latency rule: the most look-ahead its own network may have, in seconds. Reported latency
    // is one STFT window (plus one hop) plus that network's look-ahead; 0 keeps a mode "Live"
    // (under 25 ms), infinity: not bounded (offline use).
    double max_lookahead_s;
    // The faster modes whose networks it averages with its own (equal weights): separately
    // trained networks err differently, and the blend scored above either alone on held-out
    // songs and real music (docs/models.md §6).
    std::array<QualityMode, 2> also_averages;
    size_t also_averages_count;
    // A "pro" mode: built to spend tokens per minute of processed audio (its processor can
    // cross-fade to Live (DSP) when no lease covers it).
    bool metered;
    // Sold today: a pro mode spends tokens only once it beats Live (DSP) on the test split of
    // the real-music evaluation (bench/quality/split.json, docs/eval.md), with the confidence
    // interval of the paired difference above 0. Until then it plays free (status "Free mode").
    bool sold;
    // "Do no harm" (engine/neural/stem_choice_estimator.h), chosen on the dev split only
    // (bench/quality/split.json; figures in docs/models.md §7). Per stem (vocals, drums, bass,
    // other), the share of the networks' mask, the rest from DSP: the networks beat DSP on every
    // stem on dev (taking bass from DSP cut the guitar sent to bass but lowered the
    // Frets-on-Fire SDR). Doubt: a vocal mask under `vocal_expand_below` is pushed down (the
    // instrumentals' leakage is made of such masks); `vocal_agreement` moves the vocal mask that
    // far towards the smaller of network and DSP voice (for Live it cost 0.3 dB on the real
    // vocal clip, so Live has none).
    std::array<float, 4> stem_network_weight;
    float vocal_agreement;
    float vocal_expand_below;
    ModeStatus status;
};

inline constexpr double kUnboundedLookahead = std::numeric_limits<double>::infinity();

inline constexpr std::array<QualityModeInfo, 4> kQualityModes = {{
    {QualityMode::kLiveDsp,
     "dsp",
     "Live (DSP)",
     "",
     NeuralVariant::kLive,
     0.0,
     {},
     0,
     false,
     false,
     {1.0f, 1.0f, 1.0f, 1.0f},
     0.0f,
     0.0f,
     ModeStatus::kDefault},
    {QualityMode::kLiveNeural,
     "live",
     "Live (neural)",
     "live.stsnn",
     NeuralVariant::kLive,
     0.0,
     {},
     0,
     true,
     false,
     {1.0f, 1.0f, 1.0f, 1.0f},
     0.0f,
     0.3f,
     ModeStatus::kShipped},
    {QualityMode::kStudio,
     "studio",
     "Studio (neural)",
     "studio.stsnn",
     NeuralVariant::kStudio,
     1.0,
     {QualityMode::kLiveNeural},
     1,
     true,
     false,
     {1.0f, 1.0f, 1.0f, 1.0f},
     0.3f,
     0.3f,
     ModeStatus::kShipped},
    {QualityMode::kRender,
     "render",
     "Render (neural)",
     "render.stsnn",
     NeuralVariant::kRender,
     kUnboundedLookahead,
     {QualityMode::kStudio, QualityMode::kLiveNeural},
     2,
     true,
     false,
     {1.0f, 1.0f, 1.0f, 1.0f},
     0.3f,
     0.3f,
     ModeStatus::kOffline},
}};
inline constexpr uint32_t kQualityModeCount = static_cast<uint32_t>(kQualityModes.size());

// The environment variable that meters the pro modes that are not sold yet, as if they were:
// for the metering tests and a staging server. Read off the audio thread (plugin instantiate).
inline constexpr const char* kMeterUnsoldModesEnv = "STEMSPHERE_METER_UNSOLD_MODES";

// Whether `info` spends tokens in this process: a sold pro mode, or any pro mode when unsold ones
// are metered on request.
constexpr bool spends_tokens(const QualityModeInfo& info, bool meter_unsold) {
    return info.metered && (info.sold || meter_unsold);
}

constexpr const QualityModeInfo& quality_mode_info(QualityMode mode) {
    return kQualityModes[static_cast<size_t>(mode)];
}

inline const char* quality_mode_name(QualityMode mode) {
    return quality_mode_info(mode).label.data();  // the literals are NUL-terminated
}

// The mode called `name` on the command line (any case), or nullptr.
inline const QualityModeInfo* find_quality_mode(std::string_view name) {
    for (const QualityModeInfo& info : kQualityModes) {
        if (info.name.size() != name.size()) continue;
        bool same = true;
        for (size_t i = 0; i < name.size() && same; ++i) {
            same = std::tolower(static_cast<unsigned char>(name[i])) == info.name[i];
        }
        if (same) return &info;
    }
    return nullptr;
}

// The table is indexed by mode value.
static_assert([] {
    for (size_t i = 0; i < kQualityModes.size(); ++i) {
        if (static_cast<size_t>(kQualityModes[i].mode) != i) return false;
    }
    return true;
}());

}  // namespace stemsphere
