// The plugin's port table (plugin/ports.h) and the quality-mode table (engine/quality_modes.h)
// against the hand-written TTL, as a host reads it through lilv: a port added, moved or given
// another range in one place but not the other fails here, before a host or a saved session
// meets the difference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "client/meter.h"
#include "plugin/ports.h"
#include "tools/lv2host/plugin_host.h"

namespace {

using stemsphere::host::HostOptions;
using stemsphere::host::PluginHost;
using stemsphere::plugin::kPortCount;
using stemsphere::plugin::kPorts;
using stemsphere::plugin::PortKind;

using stemsphere::plugin::Layout;
using stemsphere::plugin::port_row;

// Stemsphere Stems (the original URI) and Stemsphere (stereo out), by Layout.
constexpr const char* kUri = "https://stemsphere.dev/plugins/stemsphere";
constexpr const char* kStereoUri = "https://stemsphere.dev/plugins/stemsphere-stereo";

std::unique_ptr<PluginHost> make_host(const char* uri = kUri) {
    std::string error;
    auto host = PluginHost::create(STEMSPHERE_BUNDLE_DIR, uri, HostOptions{}, &error);
    EXPECT_NE(host, nullptr) << error;
    return host;
}

bool contains(const std::vector<std::string>& list, std::string_view symbol) {
    return std::find(list.begin(), list.end(), symbol) != list.end();
}

// Every port of each plugin is the table row port_row() names for it, and every row is a port.
TEST(PortTable, EveryRowMatchesTheTtlOfBothPlugins) {
    for (const auto& [uri, layout] :
         {std::pair{kUri, Layout::kStems}, std::pair{kStereoUri, Layout::kStereo}}) {
        SCOPED_TRACE(uri);
        auto host = make_host(uri);
        ASSERT_TRUE(host);
        const std::vector<std::string> symbols = host->port_symbols();
        const uint32_t expected_count =
            layout == Layout::kStems ? kPortCount : stemsphere::plugin::kStereoPortCount;
        ASSERT_EQ(symbols.size(), expected_count)
            << "the TTL and plugin/ports.h list different ports";
        EXPECT_EQ(port_row(layout, expected_count), kPortCount) << "one port too many";
        for (uint32_t i = 0; i < expected_count; ++i) {
            const uint32_t row_index = port_row(layout, i);
            ASSERT_LT(row_index, kPortCount);
            const auto& row = kPorts[row_index];
            SCOPED_TRACE("port " + std::to_string(i) + " '" + std::string(row.symbol) + "'");
            EXPECT_EQ(symbols[i], row.symbol);
            switch (row.kind) {
                case PortKind::kAudioIn:
                    EXPECT_TRUE(contains(host->audio_input_symbols(), row.symbol));
                    break;
                case PortKind::kAudioOut:
                    EXPECT_TRUE(contains(host->audio_output_symbols(), row.symbol));
                    break;
                case PortKind::kAtomIn:
                    EXPECT_TRUE(contains(host->atom_input_symbols(), row.symbol));
                    break;
                case PortKind::kAtomOut:
                    EXPECT_TRUE(contains(host->atom_output_symbols(), row.symbol));
                    break;
                case PortKind::kControlIn:
                case PortKind::kControlOut: {
                    const auto info = host->control_info(std::string(row.symbol));
                    ASSERT_TRUE(info.has_value());
                    EXPECT_EQ(info->index, i);
                    EXPECT_EQ(info->is_input, row.kind == PortKind::kControlIn);
                    EXPECT_EQ(info->minimum, row.minimum);
                    EXPECT_EQ(info->maximum, row.maximum);
                    EXPECT_EQ(info->default_value, row.default_value);
                    EXPECT_EQ(info->toggled, row.toggled);
                    break;
                }
            }
        }
    }
}

// The `quality` choices a host shows are the modes of engine/quality_modes.h, by value.
TEST(PortTable, QualityScalePointsAreTheModeTable) {
    auto host = make_host();
    ASSERT_TRUE(host);
    const auto info = host->control_info("quality");
    ASSERT_TRUE(info.has_value());
    EXPECT_TRUE(info->enumeration);
    ASSERT_EQ(info->scale_points.size(), stemsphere::kQualityModeCount);
    for (const auto& mode : stemsphere::kQualityModes) {
        const auto& [value, label] = info->scale_points[static_cast<size_t>(mode.mode)];
        EXPECT_EQ(value, static_cast<float>(mode.mode));
        EXPECT_EQ(label, mode.label);
    }
}

// The `status` choices are kStatusLabels; their values are client::LicenceState's (and -1).
TEST(PortTable, StatusScalePointsAreTheLicenceStates) {
    using stemsphere::client::LicenceState;
    using stemsphere::plugin::kStatusLabels;
    auto host = make_host();
    ASSERT_TRUE(host);
    const auto info = host->control_info("status");
    ASSERT_TRUE(info.has_value());
    EXPECT_FALSE(info->is_input);
    ASSERT_EQ(info->scale_points.size(), kStatusLabels.size());
    for (size_t i = 0; i < kStatusLabels.size(); ++i) {
        EXPECT_EQ(info->scale_points[i].first, static_cast<float>(i) - 1.0f);
        EXPECT_EQ(info->scale_points[i].second, kStatusLabels[i]);
    }
    EXPECT_EQ(info->scale_points[0].first, stemsphere::plugin::kStatusChecking);
    EXPECT_EQ(info->scale_points[1 + static_cast<int>(LicenceState::exhausted)].second,
              "Exhausted");
    EXPECT_EQ(info->scale_points[1 + static_cast<int>(LicenceState::free_mode)].second,
              "Free mode");
    EXPECT_EQ(info->scale_points[1 + static_cast<int>(LicenceState::offline_grace)].second,
              "Offline (grace)");
}

// Every model file the mode table names ships in the bundle.
TEST(PortTable, EveryModeModelFileIsInTheBundle) {
    for (const auto& mode : stemsphere::kQualityModes) {
        if (mode.model_file.empty()) continue;
        const std::string path =
            std::string(STEMSPHERE_BUNDLE_DIR) + "models/" + std::string(mode.model_file);
        EXPECT_TRUE(std::filesystem::is_regular_file(path)) << path;
    }
}

// Every stem has one port of each per-stem control, in the engine's stem order.
TEST(PortTable, StemNamesFollowTheEngine) {
    auto host = make_host();
    ASSERT_TRUE(host);
    const auto outputs = host->audio_output_symbols();
    ASSERT_EQ(outputs.size(), 2 + 2 * stemsphere::kStemCount);
    for (size_t s = 0; s < stemsphere::kStemCount; ++s) {
        const std::string stem = stemsphere::kStemNames[s];
        EXPECT_EQ(outputs[2 + 2 * s], stem + "_l");
        EXPECT_EQ(outputs[3 + 2 * s], stem + "_r");
        for (const char* control :
             {"gain", "mute", "solo", "azimuth", "elevation", "distance", "width"}) {
            EXPECT_TRUE(host->control_info(stem + "_" + control).has_value()) << stem << control;
        }
    }
}

}  // namespace
