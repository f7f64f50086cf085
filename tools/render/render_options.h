#pragma once
// Command line of stemsphere-render: what to render, through which plugin, with which settings.

#include <cstdint>
#include <string>
#include <vector>

namespace stemsphere::render {

inline constexpr const char* kStemsphereUri = "https://stemsphere.dev/plugins/stemsphere";
inline constexpr const char* kHrtfProperty = "https://stemsphere.dev/plugins/stemsphere#hrtf_file";

// One `--set SYMBOL=VALUE`; VALUE is a number or a scale-point label of that control.
struct ControlSetting {
    std::string symbol;
    std::string value;
};

// One path parameter sent as patch:Set before rendering (`--hrtf FILE` is one of these).
struct PathSetting {
    std::string property_uri;
    std::string path;
};

struct RenderSettings {
    std::vector<std::string> inputs;
    std::string out_dir;  // empty: <input-stem>-stems/ beside each input
    std::string bundle;   // empty: searched (see find_default_bundle)
    std::string uri = kStemsphereUri;
    std::string preset;                    // applied before the controls
    std::vector<ControlSetting> controls;  // applied in command-line order
    std::vector<PathSetting> paths;        // applied last
    uint32_t block = 1024;
    // A metered mode that cannot be leased renders in Live (DSP) instead of failing.
    bool offline_ok = false;
    bool quiet = false;
    bool list = false;  // print controls and presets, render nothing
    bool help = false;
};

// Parses the arguments after argv[0]. False with a one-line *error on bad usage.
bool parse_arguments(const std::vector<std::string>& args, RenderSettings* settings,
                     std::string* error);
std::string usage_text();

}  // namespace stemsphere::render
