#pragma once
// The ports of both plugins of the bundle in one table: row, symbol, kind, range and default.
// Stemsphere Stems (the original URI) has every row, its port index = the row (hosts and saved
// sessions know its symbols and indices); Stemsphere (stereo out) has every row but the stem
// output pairs, numbered in the same order (kStereoRows). The glue connects and reads ports by
// row; ttl/ports.ttl holds the same list by hand (CMake numbers it for each plugin) and
// tests/plugin checks every row of both plugins against the TTL through the lilv host, together
// with the scale points of `quality` (engine/quality_modes.h) and `status` (kStatusLabels).
// A new port is appended here and in ttl/ports.ttl, never inserted.
#include <array>
#include <cstdint>
#include <string_view>

#include "engine/mask_estimator.h"  // kStemCount, kStemNames
#include "engine/quality_modes.h"

namespace stemsphere::plugin {

enum class PortKind : uint8_t { kAudioIn, kAudioOut, kControlIn, kControlOut, kAtomIn, kAtomOut };

struct PortInfo {
    std::string_view symbol;
    PortKind kind;
    float minimum = 0.0f;  // control ports only
    float maximum = 0.0f;
    float default_value = 0.0f;
    bool toggled = false;  // 0/1, read as > 0.5
};

// Every per-stem control exists once per stem in kStemNames order: vocals, drums, bass, other.
inline constexpr std::array<PortInfo, 51> kPorts = {{
    {"in_l", PortKind::kAudioIn},
    {"in_r", PortKind::kAudioIn},
    {"out_l", PortKind::kAudioOut},
    {"out_r", PortKind::kAudioOut},
    {"vocals_l", PortKind::kAudioOut},
    {"vocals_r", PortKind::kAudioOut},
    {"drums_l", PortKind::kAudioOut},
    {"drums_r", PortKind::kAudioOut},
    {"bass_l", PortKind::kAudioOut},
    {"bass_r", PortKind::kAudioOut},
    {"other_l", PortKind::kAudioOut},
    {"other_r", PortKind::kAudioOut},
    {"enabled", PortKind::kControlIn, 0, 1, 1, true},
    {"quality", PortKind::kControlIn, 0, kQualityModeCount - 1, 0},
    {"vocals_gain", PortKind::kControlIn, -60, 12, 0},
    {"drums_gain", PortKind::kControlIn, -60, 12, 0},
    {"bass_gain", PortKind::kControlIn, -60, 12, 0},
    {"other_gain", PortKind::kControlIn, -60, 12, 0},
    {"vocals_mute", PortKind::kControlIn, 0, 1, 0, true},
    {"drums_mute", PortKind::kControlIn, 0, 1, 0, true},
    {"bass_mute", PortKind::kControlIn, 0, 1, 0, true},
    {"other_mute", PortKind::kControlIn, 0, 1, 0, true},
    {"vocals_solo", PortKind::kControlIn, 0, 1, 0, true},
    {"drums_solo", PortKind::kControlIn, 0, 1, 0, true},
    {"bass_solo", PortKind::kControlIn, 0, 1, 0, true},
    {"other_solo", PortKind::kControlIn, 0, 1, 0, true},
    {"latency", PortKind::kControlOut, 0, 1048576, 0},
    {"control", PortKind::kAtomIn},
    {"notify", PortKind::kAtomOut},
    {"binaural", PortKind::kControlIn, 0, 1, 1, true},
    {"vocals_azimuth", PortKind::kControlIn, -180, 180, 0},
    {"drums_azimuth", PortKind::kControlIn, -180, 180, 0},
    {"bass_azimuth", PortKind::kControlIn, -180, 180, 0},
    {"other_azimuth", PortKind::kControlIn, -180, 180, 0},
    {"vocals_elevation", PortKind::kControlIn, -90, 90, 0},
    {"drums_elevation", PortKind::kControlIn, -90, 90, 0},
    {"bass_elevation", PortKind::kControlIn, -90, 90, 0},
    {"other_elevation", PortKind::kControlIn, -90, 90, 0},
    {"vocals_distance", PortKind::kControlIn, 0.25f, 20, 1},
    {"drums_distance", PortKind::kControlIn, 0.25f, 20, 1},
    {"bass_distance", PortKind::kControlIn, 0.25f, 20, 1},
    {"other_distance", PortKind::kControlIn, 0.25f, 20, 1},
    {"vocals_width", PortKind::kControlIn, 0, 180, 60},
    {"drums_width", PortKind::kControlIn, 0, 180, 60},
    {"bass_width", PortKind::kControlIn, 0, 180, 60},
    {"other_width", PortKind::kControlIn, 0, 180, 60},
    {"head_yaw", PortKind::kControlIn, -180, 180, 0},
    {"head_pitch", PortKind::kControlIn, -90, 90, 0},
    {"head_roll", PortKind::kControlIn, -180, 180, 0},
    // Licence state of the running mode: kStatusChecking, or a client::LicenceState value.
    {"status", PortKind::kControlOut, -1, 5, -1},
    // "Report Studio latency in Live modes": Live modes are padded to the Studio latency.
    {"studio_latency", PortKind::kControlIn, 0, 1, 0, true},
}};
inline constexpr uint32_t kPortCount = static_cast<uint32_t>(kPorts.size());

// The index of `symbol`; a compile error (in constant evaluation) when there is none.
consteval uint32_t port_index(std::string_view symbol) {
    for (uint32_t i = 0; i < kPortCount; ++i) {
        if (kPorts[i].symbol == symbol) return i;
    }
    throw "no such port";
}

// Named ports, and the first of each per-stem group (the stems follow in kStemNames order).
inline constexpr uint32_t kInL = port_index("in_l");
inline constexpr uint32_t kInR = port_index("in_r");
inline constexpr uint32_t kOutFirst = port_index("out_l");  // main L/R, then each stem L/R
inline constexpr uint32_t kEnabled = port_index("enabled");
inline constexpr uint32_t kQuality = port_index("quality");
inline constexpr uint32_t kGainFirst = port_index("vocals_gain");
inline constexpr uint32_t kMuteFirst = port_index("vocals_mute");
inline constexpr uint32_t kSoloFirst = port_index("vocals_solo");
inline constexpr uint32_t kLatency = port_index("latency");
inline constexpr uint32_t kControl = port_index("control");
inline constexpr uint32_t kNotify = port_index("notify");
inline constexpr uint32_t kBinaural = port_index("binaural");
inline constexpr uint32_t kAzimuthFirst = port_index("vocals_azimuth");
inline constexpr uint32_t kElevationFirst = port_index("vocals_elevation");
inline constexpr uint32_t kDistanceFirst = port_index("vocals_distance");
inline constexpr uint32_t kWidthFirst = port_index("vocals_width");
inline constexpr uint32_t kYaw = port_index("head_yaw");
inline constexpr uint32_t kPitch = port_index("head_pitch");
inline constexpr uint32_t kRoll = port_index("head_roll");
inline constexpr uint32_t kStatus = port_index("status");
inline constexpr uint32_t kStudioLatency = port_index("studio_latency");

// `status` before the metering thread has its first answer (not a client::LicenceState).
inline constexpr float kStatusChecking = -1.0f;
// The `status` scale points, value = index - 1 (kStatusChecking, then client::LicenceState).
inline constexpr std::array<std::string_view, 7> kStatusLabels = {
    "Checking", "Signed out", "Active", "Low balance", "Offline (grace)", "Exhausted", "Free mode"};

// The two plugins of the bundle (lv2_descriptor index = value).
enum class Layout : uint8_t { kStereo = 0, kStems = 1 };

// The rows only Stemsphere Stems has: the four stem output pairs after the main pair.
constexpr bool is_stem_output(uint32_t row) {
    return kPorts[row].kind == PortKind::kAudioOut && row >= kOutFirst + 2;
}
inline constexpr uint32_t kStereoPortCount = kPortCount - 2 * static_cast<uint32_t>(kStemCount);

// Row of each port of the stereo plugin, by its port index.
inline constexpr std::array<uint32_t, kStereoPortCount> kStereoRows = [] {
    std::array<uint32_t, kStereoPortCount> rows{};
    uint32_t n = 0;
    for (uint32_t row = 0; row < kPortCount; ++row) {
        if (!is_stem_output(row)) rows[n++] = row;
    }
    return rows;
}();
static_assert(kStereoRows[kStereoPortCount - 1] == kPortCount - 1);

// The table row of `layout`'s port `index`, or kPortCount when it has no such port.
constexpr uint32_t port_row(Layout layout, uint32_t index) {
    if (layout == Layout::kStems) return index < kPortCount ? index : kPortCount;
    return index < kStereoPortCount ? kStereoRows[index] : kPortCount;
}

// Each per-stem group holds kStemCount ports named <stem>_<suffix> in kStemNames order.
consteval bool stem_group_is_ordered(uint32_t first, std::string_view suffix, uint32_t stride = 1) {
    for (uint32_t s = 0; s < kStemCount; ++s) {
        const std::string_view symbol = kPorts[first + stride * s].symbol;
        const std::string_view stem = kStemNames[s];
        if (symbol.size() != stem.size() + 1 + suffix.size() || !symbol.starts_with(stem) ||
            symbol[stem.size()] != '_' || !symbol.ends_with(suffix)) {
            return false;
        }
    }
    return true;
}
static_assert(stem_group_is_ordered(kGainFirst, "gain"));
static_assert(stem_group_is_ordered(kMuteFirst, "mute"));
static_assert(stem_group_is_ordered(kSoloFirst, "solo"));
static_assert(stem_group_is_ordered(kAzimuthFirst, "azimuth"));
static_assert(stem_group_is_ordered(kElevationFirst, "elevation"));
static_assert(stem_group_is_ordered(kDistanceFirst, "distance"));
static_assert(stem_group_is_ordered(kWidthFirst, "width"));
static_assert(stem_group_is_ordered(kOutFirst + 2, "l", 2));
static_assert(stem_group_is_ordered(kOutFirst + 3, "r", 2));

}  // namespace stemsphere::plugin
