#pragma once
// Renders one audio file through the plugin (via the project's lilv host) into stem files.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tools/lv2host/plugin_host.h"
#include "tools/render/render_options.h"

namespace stemsphere::render {

enum class RenderStatus {
    kOk,
    kFileError,     // this input failed (missing, unreadable, unsupported); others may go on
    kUsageError,    // the settings cannot work for any input (unknown control, preset, plugin)
    kLicenceError,  // a metered mode cannot be leased (and --offline-ok was not given)
};

struct RenderResult {
    RenderStatus status = RenderStatus::kOk;
    std::string error;                 // one line, names the input
    std::vector<std::string> written;  // output paths
    uint64_t frames = 0;               // input frames = frames of every output
    double sample_rate = 0;
    uint32_t latency = 0;  // frames trimmed from the plugin output
    double seconds = 0;    // wall time spent
    // A metered mode lost its lease during the render: some of it is Live (DSP) (the plugin
    // cross-faded and kept its latency).
    bool fell_back = false;
};

// The licence of the chosen quality mode as the plugin reports it on its `status` port.
struct LicenceCheck {
    bool metered = false;  // the chosen mode spends tokens
    std::string mode;      // its label
    float status = -1;     // -1 still checking, else a client::LicenceState value
    std::string status_label;
    std::string detail;  // the plugin's last licence message (log:log)
    bool covered() const { return status >= 1.0f && status <= 3.0f; }
};

// Instantiates the plugin with the settings (48 kHz) and waits, up to `timeout_s`, for its
// metering client's first answer. The instance is handed to *keeper: the plugin's metering
// client lives while any instance of it does, so the caller keeps it for the whole run (one
// lease, settled once when the last instance goes). A plugin without a `status` port: not
// metered.
bool check_licence(const RenderSettings& settings, const std::string& bundle, double timeout_s,
                   std::unique_ptr<host::PluginHost>* keeper, LicenceCheck* check,
                   std::string* error);

// One output file: the plugin's audio outputs <prefix>_l and <prefix>_r.
struct StemOutput {
    std::string file_name;    // "vocals.wav"
    std::string port_prefix;  // "vocals"
};
// mix.wav (out_l/out_r), vocals.wav, drums.wav, bass.wav, other.wav.
const std::vector<StemOutput>& stem_outputs();

// Called with the fraction done (0..1) while rendering.
using ProgressCallback = std::function<void(double)>;

// Renders `input` into `out_dir` (created if needed). Outputs are written to temporary names
// and renamed only on success, so a failed input leaves no partial files behind.
RenderResult render_file(const RenderSettings& settings, const std::string& bundle,
                         const std::string& input, const std::string& out_dir,
                         const ProgressCallback& progress);

// Instantiates the plugin once (48 kHz) and applies the preset, controls and path parameters:
// the usage errors (exit status 2) come out here, before any input is touched.
bool validate_settings(const RenderSettings& settings, const std::string& bundle,
                       std::string* error);

// Prints the controls (symbol, range, default, choices) and presets of the plugin.
bool list_plugin(const RenderSettings& settings, const std::string& bundle, std::string* text,
                 std::string* error);

// The default bundle: <dir>/lv2/stemsphere.lv2 or <dir>/lib/lv2/stemsphere.lv2 for the
// executable's folder and its parents (build tree, install prefix), then ~/.lv2,
// /usr/local/lib/lv2, /usr/lib/lv2. Empty when none has a manifest.ttl.
std::string find_default_bundle();

}  // namespace stemsphere::render
