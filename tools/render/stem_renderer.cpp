#include "tools/render/stem_renderer.h"

#include <sndfile.h>

#include <strings.h>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include <thread>

#include "engine/quality_modes.h"
#include "tools/lv2host/plugin_host.h"

namespace stemsphere::render {

namespace fs = std::filesystem;
using host::HostOptions;
using host::PluginHost;

const std::vector<StemOutput>& stem_outputs() {
    static const std::vector<StemOutput> outputs = {{"mix.wav", "out"},
                                                    {"vocals.wav", "vocals"},
                                                    {"drums.wav", "drums"},
                                                    {"bass.wav", "bass"},
                                                    {"other.wav", "other"}};
    return outputs;
}

namespace {

struct SndfileCloser {
    void operator()(SNDFILE* file) const { sf_close(file); }
};
using SndfilePtr = std::unique_ptr<SNDFILE, SndfileCloser>;

std::string format_number(double v) {
    char text[64];
    std::snprintf(text, sizeof(text), "%g", v);
    return text;
}

// A control value from the command line: a number, or the label of one of its scale points.
bool resolve_control_value(const PluginHost& plugin, const ControlSetting& setting, float* value,
                           std::string* error) {
    errno = 0;
    char* end = nullptr;
    const float number = std::strtof(setting.value.c_str(), &end);
    if (errno == 0 && end != setting.value.c_str() && *end == '\0') {
        *value = number;
        return true;
    }
    const auto info = plugin.control_info(setting.symbol);
    if (!info || !info->is_input) return true;  // set_control reports the unknown symbol
    std::string choices;
    for (const auto& [v, label] : info->scale_points) {
        if (strcasecmp(label.c_str(), setting.value.c_str()) == 0) {
            *value = v;
            return true;
        }
        choices += (choices.empty() ? "" : ", ") + label;
    }
    *error = "control '" + setting.symbol + "': '" + setting.value + "' is not a number" +
             (choices.empty() ? std::string() : " nor one of: " + choices);
    return false;
}

// Preset first, then the controls in command-line order, then path parameters.
bool configure(PluginHost& plugin, const RenderSettings& settings, std::string* error) {
    if (!settings.preset.empty() && !plugin.apply_preset(settings.preset, error)) return false;
    for (const ControlSetting& setting : settings.controls) {
        float value = std::nanf("");
        if (!resolve_control_value(plugin, setting, &value, error)) return false;
        if (!plugin.set_control(setting.symbol, value, error)) return false;
    }
    for (const PathSetting& path : settings.paths) {
        std::error_code ec;
        if (!fs::is_regular_file(path.path, ec)) {
            *error = "file '" + path.path + "' not found";
            return false;
        }
        const std::string absolute = fs::absolute(path.path, ec).string();
        if (!plugin.set_path_parameter(path.property_uri, absolute, error)) return false;
    }
    return true;
}

std::unique_ptr<PluginHost> make_plugin(const RenderSettings& settings, const std::string& bundle,
                                        double rate, std::string* error) {
    HostOptions options;
    options.sample_rate = rate;
    options.max_block = settings.block;
    return PluginHost::create(bundle, settings.uri, options, error);
}

// Which plugin outputs feed which file: pairs <prefix>_l/_r; without them the first two outputs
// are the mix (a plain stereo plugin).
std::vector<std::pair<StemOutput, std::pair<size_t, size_t>>> map_outputs(
    const PluginHost& plugin) {
    const auto symbols = plugin.audio_output_symbols();
    const auto index_of = [&](const std::string& symbol) {
        return static_cast<size_t>(std::find(symbols.begin(), symbols.end(), symbol) -
                                   symbols.begin());
    };
    std::vector<std::pair<StemOutput, std::pair<size_t, size_t>>> out;
    for (const StemOutput& stem : stem_outputs()) {
        const size_t left = index_of(stem.port_prefix + "_l");
        const size_t right = index_of(stem.port_prefix + "_r");
        if (left < symbols.size() && right < symbols.size()) out.push_back({stem, {left, right}});
    }
    if (out.empty() && !symbols.empty()) {
        out.push_back({stem_outputs()[0], {0, std::min<size_t>(1, symbols.size() - 1)}});
    }
    return out;
}

void report_plugin_log(const PluginHost& plugin, const std::string& input, bool quiet) {
    if (quiet) return;
    for (const std::string& line : plugin.log_lines()) {
        if (line.rfind("error:", 0) == 0 || line.rfind("warning:", 0) == 0) {
            std::fprintf(stderr, "%s: plugin %s\n", input.c_str(), line.c_str());
        }
    }
}

// Runs blocks of silence (never metered) until the plugin's metering client has answered:
// `status` leaves -1 ("Checking"). False when it did not within `timeout_s`.
bool wait_for_licence_answer(PluginHost& plugin, uint32_t block, double timeout_s) {
    const uint32_t n = std::min<uint32_t>(block, 256);
    std::vector<std::vector<float>> outs(plugin.audio_output_count(), std::vector<float>(n));
    std::vector<float*> out_ptrs;
    for (auto& o : outs) out_ptrs.push_back(o.data());
    const std::vector<float> silence(n, 0.0f);
    std::vector<const float*> in_ptrs(plugin.audio_input_count(), silence.data());
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::microseconds(static_cast<int64_t>(timeout_s * 1e6));
    while (true) {
        plugin.run(in_ptrs.data(), out_ptrs.data(), n);
        if (plugin.control("status") != -1.0f) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

bool is_metered_and_uncovered(float status) {
    const bool covered = status >= 1.0f && status <= 3.0f;
    const bool free_mode = status == 5.0f;
    return !covered && !free_mode;
}

}  // namespace

bool check_licence(const RenderSettings& settings, const std::string& bundle, double timeout_s,
                   std::unique_ptr<PluginHost>* keeper, LicenceCheck* check, std::string* error) {
    auto plugin = make_plugin(settings, bundle, 48000, error);
    if (!plugin || !configure(*plugin, settings, error)) return false;
    *check = LicenceCheck{};
    const auto status_info = plugin->control_info("status");
    const auto quality_info = plugin->control_info("quality");
    if (!status_info || status_info->is_input || !quality_info) {
        *keeper = std::move(plugin);
        return true;  // not a metered plugin
    }
    const long quality = std::lround(plugin->control("quality"));
    if (quality < 0 || quality >= static_cast<long>(kQualityModeCount)) {
        *keeper = std::move(plugin);
        return true;
    }
    const QualityModeInfo& mode = quality_mode_info(static_cast<QualityMode>(quality));
    check->metered = mode.metered;
    check->mode = std::string(mode.label);
    if (check->metered) {
        plugin->activate();
        wait_for_licence_answer(*plugin, settings.block, timeout_s);
        plugin->deactivate();
        check->status = plugin->control("status");
        for (const auto& [value, label] : status_info->scale_points) {
            if (value == check->status) check->status_label = label;
        }
        // "Stemsphere licence: LABEL: MESSAGE; metered modes play Live (DSP)" → "LABEL: MESSAGE"
        for (const std::string& line : plugin->log_lines()) {
            const size_t at = line.find("licence: ");
            if (at != std::string::npos) check->detail = line.substr(at + 9);
        }
        check->detail = check->detail.substr(0, check->detail.find_first_of(";\n"));
    }
    *keeper = std::move(plugin);
    return true;
}

bool list_plugin(const RenderSettings& settings, const std::string& bundle, std::string* text,
                 std::string* error) {
    auto plugin = make_plugin(settings, bundle, 48000, error);
    if (!plugin) return false;
    std::string out = plugin->name() + " <" + plugin->uri() + ">\n";
    out += "audio in:  " + std::to_string(plugin->audio_input_count()) +
           ", audio out: " + std::to_string(plugin->audio_output_count()) + "\ncontrols:\n";
    for (const std::string& symbol : plugin->control_input_symbols()) {
        const auto info = plugin->control_info(symbol);
        out += "  " + symbol + "  [" + format_number(double{info->minimum}) + " .. " +
               format_number(double{info->maximum}) + "] default " +
               format_number(double{info->default_value});
        if (!info->scale_points.empty()) {
            out += "  (";
            for (size_t i = 0; i < info->scale_points.size(); ++i) {
                out += (i ? ", " : "") + format_number(double{info->scale_points[i].first}) +
                       " = " + info->scale_points[i].second;
            }
            out += ")";
        }
        out += "  " + info->name + "\n";
    }
    out += "presets:\n";
    for (const std::string& label : plugin->preset_labels()) out += "  " + label + "\n";
    *text = out;
    return true;
}

RenderResult render_file(const RenderSettings& settings, const std::string& bundle,
                         const std::string& input, const std::string& out_dir,
                         const ProgressCallback& progress) {
    const auto started = std::chrono::steady_clock::now();
    RenderResult result;
    const auto fail = [&](RenderStatus status, const std::string& message) {
        result.status = status;
        result.error = input + ": " + message;
        return result;
    };
    std::error_code ec;
    if (!fs::exists(input, ec)) return fail(RenderStatus::kFileError, "no such file");
    if (fs::is_directory(input, ec)) return fail(RenderStatus::kFileError, "is a directory");

    SF_INFO info{};
    SndfilePtr source(sf_open(input.c_str(), SFM_READ, &info));
    if (!source) {
        return fail(RenderStatus::kFileError,
                    std::string("cannot read audio (") + sf_strerror(nullptr) + ")");
    }
    if (info.channels < 1 || info.channels > 2) {
        return fail(RenderStatus::kFileError, std::to_string(info.channels) +
                                                  " channels; only mono and stereo are supported");
    }
    result.sample_rate = info.samplerate;

    std::string error;
    auto plugin = make_plugin(settings, bundle, info.samplerate, &error);
    if (!plugin) return fail(RenderStatus::kFileError, error);
    if (!configure(*plugin, settings, &error)) return fail(RenderStatus::kUsageError, error);
    const auto outputs = map_outputs(*plugin);
    if (outputs.empty() || plugin->audio_input_count() == 0) {
        return fail(RenderStatus::kUsageError,
                    "plugin <" + settings.uri + "> has no audio input or output to render");
    }

    fs::create_directories(out_dir, ec);
    if (!fs::is_directory(out_dir, ec)) {
        return fail(RenderStatus::kFileError, "cannot create output folder '" + out_dir + "'");
    }
    std::vector<std::string> temp_paths;
    std::vector<SndfilePtr> sinks;
    const auto remove_temps = [&] {
        sinks.clear();
        for (const auto& path : temp_paths) fs::remove(path, ec);
    };
    for (const auto& [stem, ports] : outputs) {
        SF_INFO format{};
        format.samplerate = info.samplerate;
        format.channels = 2;
        format.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
        temp_paths.push_back((fs::path(out_dir) / ("." + stem.file_name + ".partial")).string());
        sinks.emplace_back(sf_open(temp_paths.back().c_str(), SFM_WRITE, &format));
        if (!sinks.back()) {
            const std::string reason = sf_strerror(nullptr);
            remove_temps();
            return fail(RenderStatus::kFileError,
                        "cannot write '" + temp_paths.back() + "' (" + reason + ")");
        }
    }

    const uint32_t block = settings.block;
    const size_t in_count = plugin->audio_input_count();
    std::vector<float> interleaved(2 * static_cast<size_t>(block));
    std::vector<std::vector<float>> in_buffers(in_count, std::vector<float>(block, 0.0f));
    std::vector<std::vector<float>> out_buffers(plugin->audio_output_count(),
                                                std::vector<float>(block, 0.0f));
    std::vector<const float*> in_ptrs;
    for (auto& buffer : in_buffers) in_ptrs.push_back(buffer.data());
    std::vector<float*> out_ptrs;
    for (auto& buffer : out_buffers) out_ptrs.push_back(buffer.data());

    plugin->activate();
    // One block of silence first: patch messages and worker jobs (HRTF loading) take effect and
    // the latency port holds its final value before the first input frame goes in.
    plugin->run(in_ptrs.data(), out_ptrs.data(), block);
    plugin->wait_for_worker();
    // A metered mode: its metering client answers first (the caller's licence check has it
    // open already, so this is quick); without a lease nothing is rendered, unless the caller
    // chose Live (DSP) instead (--offline-ok).
    const bool has_status = plugin->control_info("status").has_value();
    if (has_status && plugin->control("status") == -1.0f) {
        wait_for_licence_answer(*plugin, block, 20.0);
    }
    if (has_status && is_metered_and_uncovered(plugin->control("status"))) {
        remove_temps();
        return fail(RenderStatus::kLicenceError,
                    "the chosen quality mode is metered and no lease covers it (status " +
                        format_number(double{plugin->control("status")}) + "); nothing rendered");
    }
    // A plugin that failed to load what it was given (an HRTF file, say) would render something
    // other than what was asked for.
    for (const std::string& line : plugin->log_lines()) {
        if (line.rfind("error:", 0) == 0) {
            remove_temps();
            return fail(RenderStatus::kFileError, "plugin " + line);
        }
    }
    // Start the song from a clean state: the silence above must not shift the input against the
    // plugin's internal hop grid, or the stems would depend on --block.
    plugin->deactivate();
    plugin->activate();
    const float reported = plugin->latency();
    result.latency = reported > 0 ? static_cast<uint32_t>(std::lround(reported)) : 0;

    uint64_t to_skip = result.latency;  // output frames before the first input frame's
    uint64_t frames_in = 0;
    uint64_t frames_out = 0;
    bool at_end = false;
    const bool known_length = info.frames > 0 && info.frames < (int64_t{1} << 40);
    while (!at_end || frames_out < frames_in) {
        uint32_t n = block;
        if (at_end) {
            // After the input ends, zeros flush the plugin's latency out.
            for (auto& buffer : in_buffers) std::fill(buffer.begin(), buffer.end(), 0.0f);
        } else {
            const sf_count_t got = sf_readf_float(source.get(), interleaved.data(), block);
            if (got < static_cast<sf_count_t>(block)) {
                at_end = true;
                if (sf_error(source.get()) != SF_ERR_NO_ERROR) {
                    const std::string reason = sf_strerror(source.get());
                    remove_temps();
                    return fail(RenderStatus::kFileError, "decoding failed (" + reason + ")");
                }
            }
            const auto frames = static_cast<uint32_t>(std::max<sf_count_t>(got, 0));
            for (uint32_t i = 0; i < block; ++i) {
                const bool real = i < frames;
                const float left = real ? interleaved[info.channels * i] : 0.0f;
                const float right =
                    real ? interleaved[info.channels * i + info.channels - 1] : 0.0f;
                // A mono file has left == right: the same signal on both plugin inputs.
                if (in_count == 1) {
                    in_buffers[0][i] = 0.5f * (left + right);
                } else {
                    in_buffers[0][i] = left;
                    in_buffers[1][i] = right;
                }
            }
            frames_in += frames;
            if (frames > 0) n = frames;
        }
        plugin->run(in_ptrs.data(), out_ptrs.data(), n);
        if (has_status && is_metered_and_uncovered(plugin->control("status"))) {
            result.fell_back = true;  // the plugin cross-faded to Live (DSP) and goes on
        }
        uint32_t first = 0;
        if (to_skip > 0) {
            first = static_cast<uint32_t>(std::min<uint64_t>(to_skip, n));
            to_skip -= first;
        }
        const auto count =
            static_cast<uint32_t>(std::min<uint64_t>(n - first, frames_in - frames_out));
        if (count == 0) continue;
        for (size_t k = 0; k < outputs.size(); ++k) {
            const auto& ports = outputs[k].second;
            for (uint32_t i = 0; i < count; ++i) {
                interleaved[2 * i] = out_buffers[ports.first][first + i];
                interleaved[2 * i + 1] = out_buffers[ports.second][first + i];
            }
            if (sf_writef_float(sinks[k].get(), interleaved.data(), count) != count) {
                const std::string reason = sf_strerror(sinks[k].get());
                remove_temps();
                return fail(RenderStatus::kFileError, "writing failed (" + reason + ")");
            }
        }
        frames_out += count;
        if (progress && known_length) {
            progress(
                std::min(1.0, static_cast<double>(frames_out) / static_cast<double>(info.frames)));
        }
    }
    plugin->deactivate();
    report_plugin_log(*plugin, input, settings.quiet);

    sinks.clear();  // closes the files
    for (size_t k = 0; k < outputs.size(); ++k) {
        const std::string final_path = (fs::path(out_dir) / outputs[k].first.file_name).string();
        fs::rename(temp_paths[k], final_path, ec);
        if (ec) {
            remove_temps();
            return fail(RenderStatus::kFileError, "cannot write '" + final_path + "'");
        }
        result.written.push_back(final_path);
    }
    result.frames = frames_in;
    result.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return result;
}

std::string find_default_bundle() {
    const auto has_bundle = [](const fs::path& dir) {
        std::error_code ec;
        return fs::is_regular_file(dir / "manifest.ttl", ec);
    };
    std::vector<fs::path> candidates;
    std::error_code ec;
    fs::path dir = fs::read_symlink("/proc/self/exe", ec).parent_path();
    for (int level = 0; level < 4 && !ec && !dir.empty(); ++level) {
        candidates.push_back(dir / "lv2" / "stemsphere.lv2");
        candidates.push_back(dir / "lib" / "lv2" / "stemsphere.lv2");
        if (dir == dir.parent_path()) break;
        dir = dir.parent_path();
    }
#ifdef STEMSPHERE_INSTALL_LV2_DIR
    candidates.push_back(fs::path(STEMSPHERE_INSTALL_LV2_DIR) / "stemsphere.lv2");
#endif
    if (const char* home = std::getenv("HOME")) {
        candidates.push_back(fs::path(home) / ".lv2" / "stemsphere.lv2");
    }
    candidates.push_back("/usr/local/lib/lv2/stemsphere.lv2");
    candidates.push_back("/usr/lib/lv2/stemsphere.lv2");
    for (const fs::path& candidate : candidates) {
        if (has_bundle(candidate)) return candidate.string();
    }
    return "";
}

bool validate_settings(const RenderSettings& settings, const std::string& bundle,
                       std::string* error) {
    auto plugin = make_plugin(settings, bundle, 48000, error);
    return plugin && configure(*plugin, settings, error);
}

}  // namespace stemsphere::render
